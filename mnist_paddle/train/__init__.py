"""Training: from the MNIST files and a YAML config to a checkpoint and an exported model.

    config      YAML configs with -o overrides, typed once (a dataclass per section)
    data        the MNIST files through paddle.vision, checked; the model's input spec
    loader      the data a run trains and evaluates on: batches, augmentation, validation split
    optim       optimizer, learning-rate schedule, loss
    engine      train / fine-tune / resume: one setup path, then paddle.Model.fit
    callbacks   what happens after every batch and epoch: random state, finite checks, records
    checkpoint  checkpoint files and their JSON description; loading them with checks
    rundir      run folders: claiming one, checking a resume, what an interruption leaves
    plots       the PNGs a run writes
    commands    the train and fine-tune commands (tools/train.py, tools/finetune.py)
    export      checkpoint -> static model for Paddle Inference, checked against dygraph

May import: the shared modules at the top of the package, `models`, and `serving.inference`
(export checks its model through the predictor the deployment uses). Never `bench`.
"""
