"""deploy/serve.py, started as a user starts it, through a real HTTP client and a real browser."""

import base64
import contextlib
import os
import shutil
import socket
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from conftest import ROOT, assert_one_line_error, png_header, run_tool, start_server

from mnist_paddle.bench.loadtest import labelled_pngs, run_load

SAMPLE_FILES = sorted((ROOT / "deploy" / "samples").glob("*_label?.png"))
SAMPLES = labelled_pngs(ROOT / "deploy" / "samples")  # (PNG bytes, label), in SAMPLE_FILES order
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def server(exported):
    process, url = start_server(exported)
    yield url
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def small_server(exported):
    """A server with small limits, to check that they hold."""
    process, url = start_server(
        exported, "--max-body", "200000", "--max-pixels", "1000000", "--max-images", "4"
    )
    yield url
    process.terminate()
    process.wait(timeout=30)


def test_health(server):
    assert httpx.get(f"{server}/health").json() == {
        "status": "ok",
        "model": "lenet",
        "test_acc": pytest.approx(0.9, abs=0.1),
        "numbers": False,
    }


@pytest.fixture(scope="module")
def infer_answers(exported) -> list[dict]:
    """What deploy/infer.py's recognizer says of the sample files."""
    from mnist_paddle.serving.inference import Recognizer

    return Recognizer(exported).recognize(SAMPLE_FILES)


def test_uploads_and_base64_answer_as_infer_py_does(server, infer_answers):
    files = [("image", (f"{i}.png", data)) for i, (data, _) in enumerate(SAMPLES)]
    uploaded = httpx.post(f"{server}/predict", files=files, data={"seen": "1"}).json()["results"]
    encoded = [base64.b64encode(data).decode() for data, _ in SAMPLES]
    as_json = httpx.post(f"{server}/predict", json={"images": encoded}).json()["results"]
    # the 28x28 image the model saw comes only when asked for
    assert [{k: v for k, v in r.items() if k != "seen"} for r in uploaded] == as_json
    # the same preprocessing and model as deploy/infer.py
    assert [r["digit"] for r in uploaded] == [a["digit"] for a in infer_answers]
    assert [r["top"] for r in uploaded] == [a["top"] for a in infer_answers]
    assert [r["sure"] for r in uploaded] == [a["sure"] for a in infer_answers]
    for r in uploaded:
        assert r["top"][0] == {"digit": r["digit"], "prob": r["prob"]}
        assert len(r["probs"]) == 10 and sum(r["probs"]) == pytest.approx(1, abs=1e-3)
        assert r["seen"].startswith("data:image/png;base64,")
    # a data URL, as the page's canvas sends it
    url = "data:image/png;base64," + encoded[0]
    (one,) = httpx.post(f"{server}/predict", json={"image": url, "seen": True}).json()["results"]
    assert one == uploaded[0]


def test_small_and_large_requests_answer_alike(server):
    """A small request is answered on the event loop, a larger one in a thread: the same answers."""
    from mnist_paddle.serving.service import SMALL_REQUEST

    blank = cv2.imencode(".png", np.full((600, 600), 255, np.uint8))[1].tobytes()
    assert SMALL_REQUEST < 600 * 600
    for data, _ in SAMPLES[:3]:
        small = httpx.post(f"{server}/predict", files={"image": ("d.png", data)})
        files = [("image", ("d.png", data)), ("image", ("blank.png", blank))]
        large = httpx.post(f"{server}/predict", files=files)
        assert small.status_code == large.status_code == 200
        assert small.json()["results"][0] == large.json()["results"][0]
        assert "no digit found" in large.json()["results"][1]["error"]


def test_a_blank_image_is_an_answer_not_an_error(server):
    blank = cv2.imencode(".png", np.full((64, 64), 255, np.uint8))[1].tobytes()
    files = [("image", ("blank.png", blank)), ("image", ("d.png", SAMPLES[0][0]))]
    response = httpx.post(f"{server}/predict", files=files)
    assert response.status_code == 200
    blank_result, digit_result = response.json()["results"]
    assert blank_result == {"error": "blank.png: no digit found (the image has no ink)"}
    assert digit_result["digit"] == SAMPLES[0][1]


@pytest.mark.parametrize(
    ("request_args", "status", "fragment"),
    [
        ({"files": {"image": ("a.txt", b"hello")}}, 400, "a.txt: not an image"),
        ({"files": {"image": ("a.png", b"")}}, 400, "a.png: empty file"),
        (
            {"files": {"photo": ("a.png", b"x")}},
            400,
            "no 'image' field in the form (fields: photo)",
        ),
        ({"json": {"picture": "x"}}, 400, 'expected {"image": "<base64>"}'),
        ({"json": {"image": "not base64!"}}, 400, "image 0: not valid base64"),
        ({"json": {"images": []}}, 400, "no images in the request"),
        ({"content": b"", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
        ({"content": b"x", "headers": {"content-type": "text/plain"}}, 415, "multipart/form-data"),
        ({"files": {"image": ("big.png", b"\0" * 300_000)}}, 413, "limit 200,000"),
        ({"files": [("image", ("a.png", b"x"))] * 5}, 413, "5 images in one request, limit 4"),
        (
            {"files": {"image": ("huge.png", png_header(5000, 5000))}},
            400,
            "huge.png: image is 5000x5000 pixels, more than the limit of 1,000,000",
        ),
    ],
    ids=[
        "not-an-image",
        "empty-file",
        "wrong-field",
        "wrong-json-key",
        "bad-base64",
        "no-images",
        "empty-body",
        "wrong-type",
        "body-too-large",
        "too-many-images",
        "too-many-pixels",
    ],
)
def test_bad_requests_get_a_4xx_and_the_service_keeps_serving(
    small_server, request_args, status, fragment
):
    response = httpx.post(f"{small_server}/predict", **request_args)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]
    assert httpx.get(f"{small_server}/health").status_code == 200


def test_a_body_without_content_length_is_refused(small_server):
    chunks = iter([b'{"image": "', b'abc"}'])  # a generator body goes out chunked
    response = httpx.post(
        f"{small_server}/predict", content=chunks, headers={"content-type": "application/json"}
    )
    assert response.status_code == 411
    assert response.json() == {"error": "send a Content-Length header"}


def test_a_request_over_the_time_limit_gets_a_503(exported):
    process, url = start_server(exported, "--timeout", "0.0001")
    try:
        # large enough to run in a thread under the time limit (service.SMALL_REQUEST)
        files = [("image", ("d.png", big_blank_png(600)))]
        response = httpx.post(f"{url}/predict", files=files)
        assert response.status_code == 503
        assert response.json() == {"error": "recognition took longer than 0.0001 s"}
        assert httpx.get(f"{url}/health").status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_request_answered_503_stops_before_the_predictor():
    """Work whose request has been answered stops: it never reaches the predictor."""
    import threading

    from mnist_paddle.serving import service

    class Recognizer:  # the predictor must not be called
        def digit_probabilities(self, digits):
            raise AssertionError("the predictor ran for a request that had its 503")

    cancelled = threading.Event()
    images = [("d.png", SAMPLES[0][0])] * 3
    options = dict.fromkeys(service.OPTIONS, False)
    cancelled.set()
    limits = service.Limits()
    assert (
        service._recognize(Recognizer(), threading.Lock(), images, limits, cancelled, options)
        is None
    )
    # set while the request waited for the predictor (another request held it)
    lock, cancelled, answers = threading.Lock(), threading.Event(), []
    lock.acquire()
    worker = threading.Thread(
        target=lambda: answers.append(
            service._recognize(Recognizer(), lock, images, limits, cancelled, options)
        )
    )
    worker.start()
    time.sleep(0.2)  # decoding done, waiting for the lock
    cancelled.set()
    lock.release()
    worker.join(timeout=10)
    assert answers == [None]


def big_blank_png(side: int = 2000) -> bytes:
    page = np.full((side, side), 255, np.uint8)
    page[side // 2 - 10 : side // 2 + 10, side // 2 - 2 : side // 2 + 2] = 0  # a small 1
    return cv2.imencode(".png", page)[1].tobytes()


def test_work_per_request_is_bounded(server):
    """Many large images in one request are refused from their headers; large requests that are
    allowed run beside normal ones without holding them up."""
    big = big_blank_png()
    too_many = [("image", (f"{i}.png", big)) for i in range(32)]  # 128 MP, 270 KB of PNG
    start = time.perf_counter()
    response = httpx.post(f"{server}/predict", files=too_many, timeout=30)
    assert response.status_code == 413 and "pixels in one request" in response.json()["error"]
    assert time.perf_counter() - start < 2  # refused before any decoding

    import concurrent.futures

    allowed = [("image", (f"{i}.png", big)) for i in range(4)]  # 16 MP: the limit
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        heavy = [
            pool.submit(httpx.post, f"{server}/predict", files=allowed, timeout=60)
            for _ in range(3)
        ]
        times = []
        for data, _ in SAMPLES * 2:
            begin = time.perf_counter()
            answer = httpx.post(f"{server}/predict", files={"image": ("d.png", data)})
            times.append(time.perf_counter() - begin)
            assert answer.status_code == 200
        assert all(f.result().status_code == 200 for f in heavy)
    assert float(np.median(times)) < 0.5, times


def test_load_of_concurrent_requests_without_a_failure(server, infer_answers):
    """A short version of tools/loadtest.py (2,000 requests, 16 at a time, by default); every answer
    must be the one deploy/infer.py gives for the file."""
    images = [(data, a["digit"]) for (data, _), a in zip(SAMPLES, infer_answers)]
    result = run_load(server, images, requests=300, concurrency=16)
    assert result["failed"] == 0, result["failures"]
    assert result["requests_per_second"] > 10


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _sockets(pid: int) -> set[str]:
    """The inodes of the sockets `pid` holds open."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # an fd closed while we look
            link = os.readlink(fd)
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    return inodes


def _tcp(port: int, state: str) -> set[str]:
    """Inodes of the IPv4 TCP sockets on local `port` in `state` (/proc/net/tcp: 0A listen,
    01 established)."""
    rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    return {r[9] for r in rows if int(r[1].split(":")[1], 16) == port and r[3] == state}


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc")
def test_workers_share_connections_opened_at_once_and_stop_together(exported):
    process, url = start_server(exported, "--workers", "2")
    port = int(url.rsplit(":", 1)[1])
    try:
        # each worker listens on a socket of its own (SO_REUSEPORT): the kernel spreads new
        # connections over them, where on one shared socket the first awake worker took them all
        deadline = time.monotonic() + 60  # the server answers once its first worker is up
        while True:
            listening = _tcp(port, "0A")
            workers = [c for c in _children(process.pid) if _sockets(c) & listening]
            if len(workers) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(listening) == len(workers) == 2
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(16)]
        for client in clients:
            client.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        for client in clients:
            assert client.recv(64).startswith(b"HTTP/1.1 200")
        connected = _tcp(port, "01")  # the server's ends (and the clients', held by this process)
        held = [len(_sockets(w) & connected) for w in workers]
        assert sum(held) == 16 and min(held) >= 1, held  # all 16 on one worker: odds 1 in 32,768
        for client in clients:
            client.close()

        second = run_tool("deploy/serve.py", "--model-dir", str(exported), "--port", str(port))
        assert_one_line_error(second, f"cannot listen on 127.0.0.1:{port}", "in use")
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    assert "Error" not in output  # no C++ "FatalError" dump from Paddle's signal handler
    assert not any(Path(f"/proc/{w}").exists() for w in workers)


def test_a_broken_export_is_one_line_at_start(tmp_path):
    result = run_tool("deploy/serve.py", "--model-dir", str(tmp_path / "none"))
    assert_one_line_error(result, "model folder", "not found")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (apt install chromium)")
def test_drawing_on_the_page_in_headless_chromium(server, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(server)

        def stroke(*points: tuple[float, float]) -> None:
            """One stroke of the mouse through `points` (0..1 of the canvas)."""
            box = page.locator("#canvas").bounding_box()
            xy = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in points]
            page.mouse.move(*xy[0])
            page.mouse.down()
            for point in xy[1:]:
                page.mouse.move(*point, steps=12)
            page.mouse.up()

        def draw(*points: tuple[float, float]) -> str:
            """Draw one stroke on a clear page; the predicted digit."""
            page.click("#clear")
            stroke(*points)
            page.wait_for_function("document.getElementById('digit').textContent !== ''")
            page.wait_for_timeout(300)  # the last stroke's request
            return page.text_content("#digit").rstrip("?")  # "7?": unsure, still a 7

        assert draw((0.5, 0.15), (0.5, 0.85)) == "1"
        assert draw((0.25, 0.2), (0.75, 0.2), (0.45, 0.85)) == "7"
        assert page.locator("#bars .bar").count() == 10
        assert page.get_attribute("#seen", "src").startswith("data:image/png;base64,")
        page.click("#clear")
        assert page.text_content("#digit") == ""

        page.screenshot(path=str(tmp_path / "page.png"))
        browser.close()


def form_photo(number_export, tmp_path) -> tuple[Path, str]:
    """A photo of a form's boxes with four MNIST test digits written in them, which the export's
    digit model reads right one at a time: (the file, the number)."""
    from mnist_paddle.serving.inference import Recognizer
    from mnist_paddle.train import pages
    from mnist_paddle.train.data import read_mnist

    images, labels = read_mnist(ROOT / "data" / "mnist", "test")
    probs = Recognizer(number_export).digit_probabilities(list(images[:200].astype(np.float32)))
    clear = [k for k in range(200) if probs[k].argmax() == labels[k] and probs[k].max() > 0.99]
    picks = clear[:4]
    crops = []
    for k in picks:
        ink = images[k].astype(np.float32) / 255
        rows, cols = np.flatnonzero(ink.max(axis=1) > 0.1), np.flatnonzero(ink.max(axis=0) > 0.1)
        crops.append(
            cv2.resize(ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], None, fx=3, fy=3)
        )
    rng = np.random.default_rng(4)
    # a form photographed from above (forms are read square-on), in uneven light
    photo = pages.photographed(pages.boxes([c.clip(0, 1) for c in crops], 60, rng), rng, tilt=0.01)
    path = tmp_path / "form.jpg"
    cv2.imwrite(str(path), photo, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return path, "".join(str(labels[k]) for k in picks)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (apt install chromium)")
def test_numbers_and_photos_on_the_page_in_headless_chromium(number_export, tmp_path):
    """Number mode reads what is drawn as the API does, and shows the strip it read; a photo
    of a form chosen with the file input is read box by box, the cleaned page shown."""
    from playwright.sync_api import sync_playwright

    process, url = start_server(number_export)
    photo, number = form_photo(number_export, tmp_path)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(url)
            page.check("#number")
            box = page.locator("#canvas").bounding_box()
            assert box["width"] > 2 * box["height"]
            for points in (((0.25, 0.15), (0.25, 0.85)), ((0.45, 0.2), (0.7, 0.2), (0.52, 0.85))):
                xy = [
                    (box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in points
                ]
                page.mouse.move(*xy[0])
                page.mouse.down()
                for point in xy[1:]:
                    page.mouse.move(*point, steps=12)
                page.mouse.up()
            page.wait_for_timeout(800)  # the last stroke's request
            page.wait_for_function("document.getElementById('prob').textContent !== ''")
            drawn = page.evaluate("document.getElementById('canvas').toDataURL('image/png')")
            expected = httpx.post(f"{url}/predict", json={"image": drawn, "number": True})
            expected = expected.json()["results"][0]
            assert page.text_content("#digit").rstrip("?") == expected.get("number", "")
            if expected.get("number"):  # the strip the line model read, 36 px high
                assert page.evaluate("document.getElementById('seen').naturalHeight") == 36

            page.set_input_files("#file", str(photo))
            page.wait_for_function(
                "document.getElementById('cleaned').style.display === 'block'", timeout=20000
            )
            page.wait_for_timeout(300)
            assert page.text_content("#digit").rstrip("?") == number
            answer = httpx.post(
                f"{url}/predict",
                files={"image": ("form.jpg", photo.read_bytes())},
                data={"number": "1"},
            ).json()["results"][0]
            assert answer["number"] == number and len(answer["digits"]) == 4
            painted = page.evaluate(
                "(() => { const c = document.getElementById('boxes');"
                " return c.getContext('2d').getImageData(0, 0, c.width, c.height).data"
                ".some((v, i) => i % 4 === 3 && v > 0); })()"
            )
            assert painted  # the boxes drawn over the photo
            page.screenshot(path=str(tmp_path / "photo.png"))
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
