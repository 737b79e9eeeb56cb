"""The recognizer as an HTTP service (FastAPI): a JSON API and a draw-a-digit page.

    GET  /         the page: a canvas to draw on, the prediction, the ten probabilities, and
                   the 28x28 image the model saw
    GET  /health   {"status": "ok", "model": ..., "test_acc": ..., "numbers": true/false}
    POST /predict  images as multipart uploads (field `image`, repeatable) or as JSON
                   {"image": "<base64>"} / {"images": [...]} (data URLs too); answers
                   {"results": [{"digit", "prob", "sure", "top", "probs"}]}, in order; with
                   "seen": true (form: seen=1) each result also has "seen", the 28x28 image the
                   model saw as a PNG data URL (for a number: the strip the line model read);
                   with "page": true, "page", the input beside the cleaned page; with "number":
                   true (form: number=1) each image is a whole number: {"results": [{"number",
                   "prob", "sure", "digits": [{"digit", "prob", "sure", "box"}]}]}

Each worker process creates its `Recognizer`s (Paddle Inference predictors) at start-up. A small
request (single digits, at most SMALL_REQUEST pixels: a canvas drawing, a photo's crop) is
answered on the event loop itself, with a recognizer of its own: handing it to a thread would cost
more than the work, as the threads take turns on the GIL. Larger requests and whole numbers run in
a thread, one at a time on the other recognizer, under the time limit: a request that runs past it
gets a 503, and its work stops at the next image or before the predictor, so it does not hold the
predictor from the requests behind it (one image's decoding, once begun, finishes).

Requests are refused with a 4xx and a JSON `{"error": ...}` when they are not what the API
takes or exceed a limit; a readable image with nothing drawn on it gets
`{"error": "no digit found ..."}` in its place of the results.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from mnist_paddle.errors import UserError
from mnist_paddle.serving.debug import picture
from mnist_paddle.serving.images import NotAnImage, decode_gray, image_pixels
from mnist_paddle.serving.inference import Recognizer
from mnist_paddle.serving.numbers import NumberReader
from mnist_paddle.serving.preprocess import NO_DIGIT, page_digit

PAGE = Path(__file__).with_name("page.html")
# single-digit requests this small are answered on the event loop (a 280x280 canvas: 0.5 ms)
SMALL_REQUEST = 512 * 512
OPTIONS = ("number", "seen", "page")  # of a request: JSON true, or form field 1
SETTINGS = "MNIST_PADDLE_SERVE"  # environment variable: the settings of worker processes (JSON)


@dataclass(frozen=True)
class Limits:
    max_body: int = 4 * 1024 * 1024  # bytes of one request
    max_pixels: int = 4_000_000  # pixels of one image (a 2000x2000 photo)
    max_request_pixels: int = 16_000_000  # pixels of all the images of one request
    max_images: int = 32  # images in one request
    timeout: float = 10.0  # seconds for one request's recognition


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def create_app(
    model_dir: str | Path = "output/inference",
    limits: Limits | None = None,
    min_prob: float | None = None,
    runtime: str = "paddle",
) -> FastAPI:
    """The service for the exported model in `model_dir`; its predictor is created at start-up.
    `min_prob`: answers below it are not sure (default: the export's threshold)."""
    limits = limits or Limits()
    state: dict = {}
    lock = threading.Lock()  # one predictor per worker: requests take turns

    async def lifespan(app: FastAPI):
        state["recognizer"] = Recognizer(model_dir, min_prob=min_prob, runtime=runtime)
        state["inline"] = Recognizer(model_dir, min_prob=min_prob, runtime=runtime)
        if "line_model" in state["recognizer"].meta["files"]:  # it reads whole numbers
            state["numbers"] = NumberReader(model_dir)
        yield

    app = FastAPI(title="mnist-paddle", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, error: BadRequest) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=error.status)

    page_html = PAGE.read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return page_html

    @app.get("/health")
    async def health() -> dict:
        meta = state["recognizer"].meta
        return {
            "status": "ok",
            "model": meta["model"]["name"],
            "test_acc": meta.get("test_acc"),
            "numbers": "numbers" in state,
        }

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        images, pixels, options = await _read_images(request, limits)
        if not options["number"] and pixels <= SMALL_REQUEST:
            unused = threading.Event()  # never set: the event loop is not interrupted
            results = _recognize(state["inline"], None, images, limits, unused, options)
            return JSONResponse({"results": results})
        cancelled = threading.Event()
        if options["number"]:
            if "numbers" not in state:
                raise BadRequest(
                    400, "this export reads no whole numbers (python tools/train_numbers.py)"
                )
            work = asyncio.to_thread(
                _read_numbers, state["numbers"], lock, images, limits, cancelled, options
            )
        else:
            work = asyncio.to_thread(
                _recognize, state["recognizer"], lock, images, limits, cancelled, options
            )
        try:
            return JSONResponse({"results": await asyncio.wait_for(work, limits.timeout)})
        except asyncio.TimeoutError:
            cancelled.set()  # the thread stops at its next check; nobody waits for its answer
            raise BadRequest(503, f"recognition took longer than {limits.timeout:g} s") from None

    return app


async def _read_images(
    request: Request, limits: Limits
) -> tuple[list[tuple[str, bytes]], int, dict[str, bool]]:
    """The request's images as (name, bytes), their pixels (from the headers), and its options:
    "number", each image holds a whole number (JSON `"number": true`, form field `number=1`);
    "seen", answer with what the model saw (`"seen": true`, `seen=1`); "page", with the input
    beside the cleaned page.
    A `BadRequest` for anything else."""
    length = request.headers.get("content-length", "")
    if not length.isdigit():
        raise BadRequest(411, "send a Content-Length header")
    if int(length) > limits.max_body:
        raise BadRequest(413, f"request body of {int(length):,} bytes, limit {limits.max_body:,}")
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind == "multipart/form-data":
        form = await request.form(max_files=limits.max_images + 1)
        uploads = form.getlist("image")
        if not uploads:
            raise BadRequest(
                400, f"no 'image' field in the form (fields: {', '.join(form) or '-'})"
            )
        images = [(u.filename or f"image {i}", await u.read()) for i, u in enumerate(uploads)]
        options = {key: form.get(key, "0") in ("1", "true", "on") for key in OPTIONS}
    elif kind == "application/json":
        body = await _json(request)
        images = _json_images(body)
        options = {key: body.get(key) is True for key in OPTIONS}
    else:
        raise BadRequest(415, "send multipart/form-data or application/json")
    if not images:
        raise BadRequest(400, "no images in the request")
    if len(images) > limits.max_images:
        raise BadRequest(413, f"{len(images)} images in one request, limit {limits.max_images}")
    # from the headers, nothing decoded; an image over the per-image limit gets its own error
    pixels = sum(p for _, data in images if (p := image_pixels(data)) <= limits.max_pixels)
    if pixels > limits.max_request_pixels:
        raise BadRequest(
            413, f"{pixels:,} pixels in one request, limit {limits.max_request_pixels:,}"
        )
    return images, pixels, options


async def _json(request: Request):
    try:
        return await request.json()
    except ValueError:
        raise BadRequest(400, "the body is not valid JSON") from None


def _json_images(body) -> list[tuple[str, bytes]]:
    if isinstance(body, dict) and "image" in body:
        texts = [body["image"]]
    elif isinstance(body, dict) and isinstance(body.get("images"), list):
        texts = body["images"]
    else:
        raise BadRequest(400, 'expected {"image": "<base64>"} or {"images": ["<base64>", ...]}')
    images = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise BadRequest(400, f"image {i}: expected a base64 string")
        if text.startswith("data:"):  # a data URL, as canvas.toDataURL() gives
            text = text.partition(",")[2]
        try:
            images.append((f"image {i}", base64.b64decode(text, validate=True)))
        except (binascii.Error, ValueError):
            raise BadRequest(400, f"image {i}: not valid base64") from None
    return images


def _recognize(
    recognizer: Recognizer,
    lock: threading.Lock | None,
    images: list[tuple[str, bytes]],
    limits: Limits,
    cancelled: threading.Event,
    options: dict[str, bool],
) -> list[dict] | None:
    """The answer for each image, or None once `cancelled` (nobody reads it: the client got its
    503); `lock` guards `recognizer` (None: only this thread uses it)."""
    digits: list[np.ndarray | None] = []
    results: list[dict] = []
    for name, data in images:
        if cancelled.is_set():
            return None
        gray = _decoded(data, name, limits)
        digit, page = page_digit(gray)
        digits.append(digit)
        results.append({"page": _png_data_url(picture(gray, page))} if options["page"] else {})
        if digit is None:  # a blank canvas: an answer, not a bad request
            results[-1]["error"] = f"{name}: {NO_DIGIT}"
    found = [i for i, d in enumerate(digits) if d is not None]
    if found:
        with lock or contextlib.nullcontext():
            if cancelled.is_set():  # it may have waited for the lock past its time limit
                return None
            probs, choices = recognizer.read_digits([digits[i] for i in found])
        for i, p, choice in zip(found, probs, choices):
            shown = [round(x, 4) for x in p.tolist()]
            results[i] |= {**recognizer.answer(p, choice), "probs": shown}
            if options["seen"]:
                results[i]["seen"] = _png_data_url(digits[i])
    return results


def _read_numbers(reader, lock, images, limits, cancelled, options) -> list[dict] | None:
    """The number in each image (NumberReader.read), or `{"error"}` for a blank one; "seen":
    the strip the line model read (in a form: the boxes' digits side by side), "page": the
    input beside the cleaned page."""
    results = []
    for name, data in images:
        if cancelled.is_set():
            return None
        gray = _decoded(data, name, limits)
        with lock:  # the reading runs the predictor, maybe several times
            if cancelled.is_set():
                return None
            try:
                result = reader.read(gray)
            except UserError as e:  # an export this version cannot read numbers with
                raise BadRequest(400, str(e)) from None
        if result is None:
            results.append({"error": f"{name}: {NO_DIGIT}"})
            continue
        reading = result.pop("reading")
        if options["seen"]:
            seen = reading.strip.pixels * 255 if reading.strip else np.hstack(reading.cuts)
            result["seen"] = _png_data_url(seen)
        if options["page"]:  # and the size of the image the boxes are in
            result["page"] = _png_data_url(picture(gray, reading.page))
            result["size"] = [gray.shape[1], gray.shape[0]]
        results.append(result)
    return results


def _decoded(data: bytes, name: str, limits: Limits) -> np.ndarray:
    """The uploaded file as a gray image; one that is not an image is a 400."""
    try:
        return decode_gray(data, name, limits.max_pixels)
    except NotAnImage as e:
        raise BadRequest(400, str(e)) from None


def _png_data_url(image: np.ndarray) -> str:
    png = cv2.imencode(".png", image.round().astype(np.uint8))[1].tobytes()
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def app_from_environment() -> FastAPI:
    """`create_app` with the settings deploy/serve.py put in the environment (for uvicorn's
    worker processes, which import the app by name)."""
    settings = json.loads(os.environ[SETTINGS])
    return create_app(
        settings["model_dir"],
        Limits(**settings["limits"]),
        settings["min_prob"],
        settings["runtime"],
    )
