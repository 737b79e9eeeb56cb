"""Serving: the exported model answering for image files and HTTP requests.

    page        the page cleaned first: uneven light flattened, printed rules and a form's boxes
    light       the page's uneven light evened out: the paper's brightness divided out
    forms       a form's boxes found on the page, each box a cell holding one digit
    debug       what the readers saw, as pictures (--debug-dir, the service's page)
    images      image files and bytes -> gray levels (any common format, size limits, transparency)
    preprocess  a gray image -> the 28x28 digit an MNIST model expects, made as MNIST made its own
    inference   the Recognizer: Paddle Inference predictors for an export folder
    strip       a whole number's ink as the strip the line model reads, and the way back
    ctc         the line model's steps decoded into candidate readings, each digit with its steps
    numbers     the NumberReader: whole numbers read by the line model and the digit model
    gpu         GPU and TensorRT predictor configs, the TensorRT engine cache
    onnx        ONNX Runtime on the export's inference.onnx (--runtime onnxruntime)
    infer       the deploy/infer.py command
    service     the FastAPI app, with page.html (the draw-a-digit page)
    serve       the deploy/serve.py command: uvicorn, one worker process per core

May import: only the shared modules at the top of the package (cli, errors, fileio, digits) and
each other. Never `train`, `models` or `bench`: a deployment needs the export folder alone
(tests/test_layout.py holds this rule).
"""
