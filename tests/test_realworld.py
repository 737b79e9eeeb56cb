import csv
import hashlib
import re

import numpy as np
from conftest import DATA, run_tool

from mnist_paddle.bench.pages import CROP_GROUPS, DIGIT_GROUPS, NUMBER_GROUPS
from mnist_paddle.bench.realworld import GROUPS, evaluate, make_realworld, naive_input
from mnist_paddle.serving.inference import Recognizer
from mnist_paddle.train import fonts, synth
from mnist_paddle.train.data import read_idx


def digest(folder):
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest() for p in files}


def test_training_and_evaluation_fonts_are_apart_by_family():
    assert len(fonts.matplotlib_fonts()) >= 10
    training = {p.name for p in fonts.training_fonts()}
    evaluation = {p.name for p in fonts.debian_fonts(fonts.EVAL_FONTS)}
    assert len(evaluation) >= 20 and not training & evaluation
    validation = {p.name for p in fonts.debian_fonts(fonts.VALIDATION_FONTS)}
    assert len(validation) >= 20 and not validation & (training | evaluation)
    families = [set(fonts.TRAIN_FONTS), set(fonts.VALIDATION_FONTS), set(fonts.EVAL_FONTS)]
    assert sum(map(len, families)) == len(set.union(*families))
    # no file of a validation or evaluation family, in any weight, is among the training fonts
    held_out = {**fonts.VALIDATION_FONTS, **fonts.EVAL_FONTS}
    for family, patterns in held_out.items():
        stem = re.split(r"[-*.]", patterns[0])[0]  # "Gentium*.ttf": Gentium
        assert not any(name.startswith(stem) for name in training), family
    # the families kept for checks from outside the project are in none
    for outside in (
        "Liberation",
        "FreeSans",
        "FreeSerif",
        "NimbusSans",
        "texgyre",
        "Lato",
        "Carlito",
    ):
        assert not any(outside.lower() in n.lower() for n in training | validation | evaluation), (
            outside
        )


def test_typeset_training_digits_look_like_mnist():
    images, labels = synth.typeset_digits(40, seed=0)
    assert images.shape == (40, 28, 28) and labels.tolist() == [i % 10 for i in range(40)]
    assert images.max() == 255 and images[:, 0, :].max() == 0  # ink to full white, black border
    again, _ = synth.typeset_digits(40, seed=0)
    assert (images == again).all()


def test_typeset_shares_make_up_the_whole():
    # each of a data-parallel run's processes typesets its share (loader.typeset_digits)
    whole, labels = synth.typeset_digits(20, seed=3)
    for first in range(3):
        share, share_labels = synth.typeset_digits(20, seed=3, share=(first, 3))
        assert (share == whole[first::3]).all() and (share_labels == labels[first::3]).all()


def test_thinning_a_hairline_face_keeps_the_digit():
    # Karla ExtraLight's 2 at 29 px, slanted by -0.23, thinned by 1 px: the training font list
    # drew it among the 12,000 training digits, and thinning left two pixels of ink and no digit
    # the preprocessing finds: it was a NaN image. Now the glyph is kept as it is.
    karla = next(p for p in fonts.training_fonts() if p.stem == "Karla-ExtraLight")
    coverage = synth.glyph("2", karla, 29, -0.23)
    thinned = synth._stroke_weight(coverage, -1)
    assert np.isfinite(thinned).all() and thinned.max() == 255
    assert (thinned == synth._stroke_weight(coverage, 0)).all()
    bolder = synth._stroke_weight(coverage, 1)
    assert np.isfinite(bolder).all() and not (bolder == thinned).all()


def test_the_set_is_fixed_by_its_seed(tmp_path):
    make_realworld(tmp_path / "a", DATA, count=12, seed=3, numbers=5, pages=2)
    make_realworld(tmp_path / "b", DATA, count=12, seed=3, numbers=5, pages=2)
    make_realworld(tmp_path / "c", DATA, count=12, seed=4, numbers=5, pages=2)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")
    with open(tmp_path / "a" / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    groups = ["mnist_paper", "printed", "printed_unseen"]
    numbers = ("numbers_paper", "numbers_printed", "numbers_long")
    assert [r["group"] for r in rows] == [g for g in groups for _ in range(12)] + [
        g for g in numbers for _ in range(5)
    ] + [g for g in DIGIT_GROUPS + NUMBER_GROUPS + CROP_GROUPS for _ in range(2)]
    assert all(2 <= len(r["label"]) <= 6 and r["label"].isdigit() for r in rows[36:46])
    assert all(7 <= len(r["label"]) <= 12 and r["label"].isdigit() for r in rows[46:51])
    assert all(len(r["label"]) == 1 for r in rows if r["group"] in DIGIT_GROUPS + CROP_GROUPS)
    labels = read_idx(DATA / "t10k-labels-idx1-ubyte.gz")
    for r in rows:
        assert (tmp_path / "a" / r["path"]).is_file()
        if r["group"] == "mnist_paper":
            assert int(r["label"]) == labels[int(r["mnist_index"])]
    assert [int(r["label"]) for r in rows[12:24]] == [i % 10 for i in range(12)]


def test_evaluation_beats_the_naive_way(tmp_path, exported):
    make_realworld(tmp_path, DATA, count=40, seed=0, numbers=0, pages=0)
    results = evaluate(Recognizer(exported), tmp_path, DATA)
    plain = [g for g in GROUPS if g not in DIGIT_GROUPS + CROP_GROUPS]
    assert set(results) == {*plain, "mnist_test"}
    assert results["mnist_test"]["images"] == 10_000
    for group in plain:
        r = results[group]
        assert r["images"] == 40
        assert r["accuracy"] >= 0.6 > 0.4 > r["naive_accuracy"]  # a model trained on 5,000 images
    for r in results.values():
        right = sum(r["correct"])
        assert r["accuracy"] == right / r["images"]
        assert 0 <= r["calibration_error"] <= 1 and 0 <= r["sure_share"] <= 1
    assert 0.8 <= results["mnist_paper"]["plain_accuracy"] <= 1
    assert naive_input(next(tmp_path.rglob("*.png")), 127.5, 127.5).shape == (1, 28, 28)


def test_tools_write_the_set_and_the_report(tmp_path, exported):
    made = run_tool(
        "tools/make_realworld.py",
        *("--out", str(tmp_path / "set"), "--count", "10", "--numbers", "4", "--pages", "2"),
    )
    assert made.returncode == 0, made.stderr
    assert "image 60/60, 0 s left" in made.stdout  # 3 x 10 digits, 3 x 4 numbers, 9 x 2 pages
    report = run_tool(
        "tools/eval_realworld.py",
        "--data",
        str(tmp_path / "set"),
        "--model-dir",
        str(exported),
        "--out",
        str(tmp_path / "bench"),
    )
    assert report.returncode == 0, report.stderr
    assert "image 40/40, 0 s left" in report.stdout  # the digit groups: 3 x 10 and 5 x 2
    for group in GROUPS:
        assert f"| {group} | {2 if group in DIGIT_GROUPS + CROP_GROUPS else 10} |" in report.stdout
    assert "| mnist_test | 10,000 |" in report.stdout
    assert "nan" not in report.stdout
    assert "Whole numbers" not in report.stdout  # the export has no line model: no numbers read
    names = sorted(p.name for p in (tmp_path / "bench").iterdir())
    assert names == [
        "realworld.json",
        "realworld.md",
        "realworld_examples.png",
        "risk_coverage.png",
    ]
    missing = run_tool(
        "tools/eval_realworld.py", "--data", str(tmp_path / "nope"), "--model-dir", str(exported)
    )
    assert missing.returncode == 2 and "no evaluation set in" in missing.stderr
