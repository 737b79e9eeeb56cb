"""Measuring: speed, accuracy on real-looking images, the model zoo, load on the service.

    training    the training-speed cases (project, the tutorial's code, PyTorch), one per process,
                and time to a test accuracy
    benchmark   inference speed beside ONNX Runtime and dygraph; the whole benchmark run
    profiles    where the time goes: predictor layers beside ONNX Runtime's, a training step
    report      the benchmark's results as Markdown
    zoo         every recipe in configs/ trained and measured into one table
    realworld   the real-looking evaluation set and the report on it
    numbers     its whole-number groups, their scores, and the time to read a number
    pages       its groups of pages: ruled, squared, a form's boxes, photographed print
    figures     the report's figures: risk-coverage curves, examples of each group
    loadtest    a bounded HTTP load test of the service, and the service under wrk

May import anything in the package; nothing imports it.
"""
