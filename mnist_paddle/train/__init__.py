"""Training: from the MNIST files and a YAML config to a checkpoint and an exported model.

    config      YAML configs with -o overrides, typed once (a dataclass per section)
    data        the MNIST files through paddle.vision, checked; the model's input spec
    fonts       the font files, split by family: training, validation, evaluation only
    synth       typeset digits and numbers, pen-on-paper renders
    pages       ruled and squared paper, a form's boxes, a photographed page (evaluation, check)
    loader      the data a run trains and evaluates on: batches, augmentation, validation split
    optim       optimizer, learning-rate schedule, loss
    engine      train / fine-tune / resume: one setup path, then paddle.Model.fit
    callbacks   what happens after every batch and epoch: random state, finite checks, records
    visualdl    the VisualDL log of a run (train.visualdl)
    checkpoint  checkpoint files and their JSON description; loading them with checks
    rundir      run folders: claiming one, checking a resume, what an interruption leaves;
                progress lines with the time left
    plots       the PNGs a run writes
    commands    the train and fine-tune commands (tools/train.py, tools/finetune.py)
    export      checkpoint -> static model for Paddle Inference, checked against dygraph
    calibrate   temperature and sure threshold, fitted at export on held-out images
    onnx        the ONNX twin of an export (paddle2onnx), checked through ONNX Runtime
    strips      training strips for the line model, composed while it trains
    numbers     the number stage: the line model trained with CTC and added to an export
    number_check  the number stage's last steps: the staged export checked, numbers of
                validation digits and fonts read, the answers calibrated

May import: the shared modules at the top of the package, `models`, and `serving` (export checks
its model through the predictor and the preprocessing the deployment uses). Never `bench`.
"""
