"""deploy/infer.py as a user runs it, on PNGs written from MNIST test images."""

import json
import re
import shutil

import cv2
import numpy as np
import paddle
import pytest
from conftest import DATA, ROOT, assert_one_line_error, png_header, run_tool

from mnist_paddle.models import build_model
from mnist_paddle.serving.infer import describe
from mnist_paddle.train.config import DataConfig
from mnist_paddle.train.data import arrays, load_mnist

COUNT = 20  # test images per polarity


@pytest.fixture(scope="module")
def digits(tmp_path_factory, trained):
    """Test images as PNGs, MNIST style and dark ink on white, with labels and model predictions."""
    cfg, _ = trained
    folder = tmp_path_factory.mktemp("digits")
    data = load_mnist(DataConfig(root=str(DATA), test_limit=COUNT), "test")
    images, labels = arrays(data)  # normalized (N, 1, 28, 28), (N,)
    labels = labels.tolist()
    network = build_model("lenet")
    network.set_state_dict(paddle.load(str(cfg.run_dir / "final.pdparams")))
    network.eval()
    preds = network(paddle.to_tensor(images)).numpy().argmax(axis=1).tolist()
    pixels = (images[:, 0] * 127.5 + 127.5).round().astype(np.uint8)
    paths = []
    for i, image in enumerate(pixels):
        paths.append(folder / f"mnist_{i:02d}.png")
        cv2.imwrite(str(paths[-1]), image)
    for i, image in enumerate(pixels):
        paths.append(folder / f"paper_{i:02d}.png")
        cv2.imwrite(str(paths[-1]), 255 - image)
    return folder, paths, labels * 2, preds * 2


def infer(exported, *args):
    return run_tool("deploy/infer.py", "--model-dir", str(exported), *args)


def test_json_output_gives_the_labels(exported, digits):
    folder, paths, labels, preds = digits
    result = infer(exported, str(folder), "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"] for r in rows] == [str(p) for p in paths]
    got = [r["digit"] for r in rows]
    assert got == preds  # exactly what the dygraph model says, both polarities
    assert np.mean(np.array(got) == np.array(labels)) >= 0.9
    for r in rows:
        assert len(r["top"]) == 3 and r["top"][0] == {"digit": r["digit"], "prob": r["prob"]}
        assert 1 >= r["top"][0]["prob"] >= r["top"][1]["prob"] >= r["top"][2]["prob"] >= 0


def test_plain_output_one_line_per_image(exported, digits):
    _, paths, _, preds = digits
    result = infer(exported, str(paths[0]), str(paths[COUNT]))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    for line, path, pred in zip(lines, (paths[0], paths[COUNT]), (preds[0], preds[COUNT])):
        assert line.startswith(f"{path}: {pred} (p=0.") or line.startswith(
            f"{path}: {pred} (p=1.000)"
        )


def test_bad_inputs_each_get_a_line_and_the_rest_still_run(exported, digits, tmp_path):
    _, paths, _, preds = digits
    good = paths[0].read_bytes()
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "truncated.png").write_bytes(good[: len(good) // 2])
    (tmp_path / "huge.png").write_bytes(png_header(100_000, 100_000))
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((64, 64), 255, np.uint8))
    (tmp_path / "no_images").mkdir()
    (tmp_path / "no_images" / "notes.txt").write_text("no images here")
    bad = {
        "missing.png": "missing.png: no such file or folder",
        "empty.png": "empty.png: empty file",
        "text.png": "text.png: not an image",
        "truncated.png": "truncated.png: damaged image",
        "huge.png": "huge.png: image is 10,000,000,000 pixels, more than the limit",
        "blank.png": "blank.png: no digit found",
        "no_images": "no_images: folder holds no images",
    }
    result = infer(exported, *(str(tmp_path / name) for name in bad), str(paths[0]))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{paths[0]}: {preds[0]} (p=")
    assert "Traceback" not in result.stderr
    errors = result.stderr.strip().splitlines()
    assert len(errors) == len(bad)  # one line each, in the order given
    for line, message in zip(errors, bad.values()):
        assert line.startswith("error: ") and message in line, line


def test_debug_dir_holds_what_the_model_saw(exported, digits, tmp_path):
    _, paths, _, _ = digits
    result = infer(
        exported, str(paths[0]), str(paths[COUNT]), "--debug-dir", str(tmp_path / "seen")
    )
    assert result.returncode == 0, result.stderr
    names = [f"0000_{paths[0].stem}", f"0001_{paths[COUNT].stem}"]
    written = sorted(p.name for p in (tmp_path / "seen").iterdir())
    assert written == sorted(f"{n}{suffix}.png" for n in names for suffix in ("", "_page"))
    seen = [tmp_path / "seen" / f"{n}.png" for n in names]
    mnist_style, from_paper = (cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in seen)
    # the cleaning: the input beside the cleaned page, as tall as the input
    page = cv2.imread(str(tmp_path / "seen" / f"{names[1]}_page.png"))
    assert page.shape[0] == cv2.imread(str(paths[COUNT])).shape[0] and page.shape[2] == 3
    assert mnist_style.shape == (28, 28) and mnist_style.dtype == np.uint8
    # the same digit, one drawn light on dark and one dark on light, is seen the same way
    assert np.abs(mnist_style.astype(int) - from_paper.astype(int)).max() <= 2
    assert mnist_style[0, 0] == 0 and mnist_style.max() == 255


def test_bad_input_in_json_mode(exported, tmp_path):
    result = infer(exported, "--json", str(tmp_path / "missing.png"))
    assert result.returncode == 1
    assert json.loads(result.stdout) == {
        "path": str(tmp_path / "missing.png"),
        "error": f"{tmp_path / 'missing.png'}: no such file or folder",
    }


def test_missing_model_folder(tmp_path):
    result = run_tool("deploy/infer.py", "--model-dir", str(tmp_path / "nope"), "x.png")
    assert_one_line_error(result, "model folder", "not found", "tools/export.py")


def _truncate(folder):
    params = folder / "inference.pdiparams"
    params.write_bytes(params.read_bytes()[:1000])


def _old_version(folder):
    meta = json.loads((folder / "metadata.json").read_text())
    (folder / "metadata.json").write_text(json.dumps(meta | {"format": "mnist-paddle-inference/1"}))


def _no_checksums(folder):
    meta = json.loads((folder / "metadata.json").read_text())
    del meta["sha256"]
    (folder / "metadata.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("damage", "fragments"),
    [
        (lambda f: (f / "metadata.json").unlink(), ["no exported model here (metadata.json"]),
        (lambda f: (f / "inference.pdiparams").unlink(), ["inference.pdiparams is missing"]),
        (lambda f: (f / "inference.json").unlink(), ["inference.json is missing"]),
        (_truncate, ["inference.pdiparams: damaged or truncated", "export the model again"]),
        (_old_version, ["format 'mnist-paddle-inference/1', this version reads", "export again"]),
        (_no_checksums, ["metadata.json: sha256 missing"]),
        (lambda f: (f / "metadata.json").write_text("{"), ["metadata.json: unreadable"]),
    ],
    ids=[
        "no-model",
        "no-params",
        "no-program",
        "truncated",
        "old-version",
        "old-fields",
        "bad-json",
    ],
)
def test_broken_model_folder_is_one_clear_error(exported, digits, tmp_path, damage, fragments):
    folder = tmp_path / "model"
    shutil.copytree(exported, folder)
    damage(folder)
    assert_one_line_error(infer(folder, str(digits[1][0])), *fragments)


@pytest.mark.skipif(
    paddle.device.is_compiled_with_cuda(), reason="checks the CPU-only build's message"
)
def test_gpu_on_a_cpu_build(exported, digits):
    result = infer(exported, "--device", "gpu", str(digits[1][0]))
    assert_one_line_error(result, "--device gpu", "no CUDA")


@pytest.mark.skipif(
    not paddle.device.is_compiled_with_cuda(), reason="this Paddle build has no CUDA"
)
def test_gpu_gives_the_cpu_answers(exported, digits):
    folder, _, _, preds = digits
    result = infer(exported, str(folder), "--json", "--device", "gpu")
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["digit"] for line in result.stdout.splitlines()] == preds


def test_unsure_answers_say_so_and_name_the_runner_up(exported, digits):
    folder, paths, _, preds = digits
    unsure = infer(exported, str(paths[0]), "--min-prob", "1")  # nothing is sure at p >= 1
    assert unsure.returncode == 0, unsure.stderr
    name, p = re.escape(str(paths[0])), r"[01]\.\d\d"
    line = unsure.stdout.strip()
    assert re.fullmatch(rf"{name}: {preds[0]}\? \(unsure, p={p}; next \d, p={p}\)", line), line
    sure = infer(exported, str(paths[0]), "--min-prob", "0")
    assert re.fullmatch(rf"{name}: {preds[0]} \(p={p}\d\)", sure.stdout.strip())
    rows = [json.loads(x) for x in infer(exported, str(folder), "--json").stdout.splitlines()]
    min_prob = json.loads((exported / "metadata.json").read_text())["min_prob"]
    assert all(r["sure"] == (r["prob"] >= min_prob) for r in rows)
    bad = infer(exported, str(paths[0]), "--min-prob", "2")
    assert bad.returncode == 2 and "--min-prob" in bad.stderr


def test_an_unsure_probability_never_shows_as_one():
    # an unsure number at 0.9994 under a form's threshold of 0.9995 printed "p=1.00" once
    assert describe({"number": "2919", "prob": 0.9994, "sure": False}) == "2919? (unsure, p=0.99)"
    assert describe({"number": "29", "prob": 0.29, "sure": False}) == "29? (unsure, p=0.29)"
    top = [{"digit": 7, "prob": 0.999}, {"digit": 1, "prob": 0.001}]
    answer = {"digit": 7, "prob": 0.999, "sure": False, "top": top}
    assert describe(answer) == "7? (unsure, p=0.99; next 1, p=0.00)"
    assert describe({"number": "2919", "prob": 0.9994, "sure": True}) == "2919 (p=0.999)"


def test_sample_digits_shipped_with_the_project(exported):
    result = infer(exported, str(ROOT / "deploy" / "samples"), "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 10
    right = sum(r["digit"] == int(r["path"][-5]) for r in rows)  # ..._label7.png
    assert right >= 8, rows


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (
            ["tools/train.py", "-o", "train.epoch=3"],
            ["-o train.epoch=3", "unknown key 'train.epoch'"],
        ),
        (["tools/train.py", "-c", "configs/nope.yml"], ["config file not found: configs/nope.yml"]),
        (["tools/train.py", "-o", "model.name=lenet6", "--summary"], ["unknown model 'lenet6'"]),
        (
            ["tools/finetune.py", "-o", "train.init_from=output/nope/final"],
            ["no checkpoint at output/nope/final"],
        ),
        (["tools/export.py", "--checkpoint", "output/nope"], ["no checkpoint at output/nope"]),
    ],
)
def test_tool_errors_are_one_line(args, fragments):
    assert_one_line_error(run_tool(*args), *fragments)


def test_summary():
    result = run_tool("tools/train.py", "-c", "configs/lenet5.yml", "--summary")
    assert result.returncode == 0, result.stderr
    assert "[1, 1, 32, 32]" in result.stdout  # LeNet-5 pads MNIST to the paper's 32x32
    assert "Total params: 61,706" in result.stdout
