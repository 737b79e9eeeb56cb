import re
from pathlib import Path

import pytest
from conftest import ROOT

from mnist_paddle.errors import UserError
from mnist_paddle.models import MODELS
from mnist_paddle.train.config import Config, load_config, save_config

CONFIGS = sorted((ROOT / "configs").glob("*.yml"))
# fine-tuning configs name no model: it comes from the checkpoint they start from
FINETUNE = {"finetune.yml": "lenet.yml", "three_conv_finetune.yml": "three_conv_typeset.yml"}


def test_tutorial_config_is_the_tutorials_recipe():
    cfg = load_config(ROOT / "configs" / "lenet_tutorial.yml")
    assert (cfg.model.name, cfg.train.epochs, cfg.train.batch_size, cfg.train.lr) == (
        "lenet",
        5,
        64,
        0.001,
    )
    assert (cfg.data.mean, cfg.data.std) == (127.5, 127.5)
    # nothing beyond the tutorial: constant Adam, no augmentation, evaluation on the test set
    assert (cfg.train.optimizer, cfg.train.schedule, cfg.train.weight_decay) == (
        "adam",
        "constant",
        0,
    )
    assert cfg.train.label_smoothing == 0 and cfg.data.val_size == 0
    assert (cfg.augment.rotate, cfg.augment.scale, cfg.augment.shift) == (0, 0, 0)
    assert (cfg.augment.shear, cfg.augment.elastic, cfg.augment.stroke, cfg.data.typeset) == (
        0,
        0,
        0,
        0,
    )


def test_default_config_is_the_tutorials_network_for_5_epochs():
    cfg = load_config(ROOT / "configs" / "lenet.yml")
    assert (cfg.model.name, cfg.train.epochs) == ("lenet", 5)
    assert cfg.data.val_size > 0  # the test images are for the final number only
    assert cfg.run_dir == Path("output/lenet")


@pytest.mark.parametrize("finetune, base", FINETUNE.items())
def test_finetune_configs_continue_their_base_run(finetune, base):
    cfg, base_cfg = load_config(ROOT / "configs" / finetune), load_config(ROOT / "configs" / base)
    assert cfg.train.init_from == f"{base_cfg.run_dir}/final"
    assert (cfg.train.epochs, cfg.train.lr) == (2, 1e-4)
    assert cfg.model.name == ""  # taken from the checkpoint
    # the base run's validation images stay held out: export calibrates on them
    assert cfg.data.val_size == base_cfg.data.val_size > 0
    assert cfg.data.typeset == base_cfg.data.typeset


def test_the_pipeline_trains_fine_tunes_and_exports_one_lineage():
    script = (ROOT / "scripts" / "run_pipeline.sh").read_text()
    train, finetune = (
        re.search(r"train.py -c (\S+)", script),
        re.search(r"finetune.py -c (\S+)", script),
    )
    tuned = load_config(ROOT / finetune[1])
    assert tuned.train.init_from == f"{load_config(ROOT / train[1]).run_dir}/final"
    assert f"export.py --checkpoint {tuned.run_dir}/final" in script


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_config_loads_and_names_a_registered_model(path):
    cfg = load_config(path)
    assert cfg.model.name in MODELS or path.name in FINETUNE
    if cfg.data.val_size:  # the validation images come out of the 60,000 training images
        assert cfg.data.train_limit == 0 or cfg.data.val_size < cfg.data.train_limit


def test_every_registered_model_has_a_config():
    named = {load_config(p).model.name for p in CONFIGS}
    assert set(MODELS) <= named


def test_overrides_are_parsed_as_yaml_and_typed():
    cfg = load_config(
        ROOT / "configs" / "lenet.yml",
        [
            "train.epochs=3",
            "train.lr=1e-4",
            "data.train_limit=100",
            "model.args.hidden_size=32",
            "run_name=x",
        ],
    )
    assert cfg.train.epochs == 3 and isinstance(cfg.train.epochs, int)
    assert cfg.train.lr == pytest.approx(1e-4) and isinstance(cfg.train.lr, float)
    assert cfg.data.train_limit == 100
    assert cfg.model.args == {"hidden_size": 32}
    assert cfg.run_dir == Path("output/x")


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "c.yml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "overrides", "fragments"),
    [
        ("train:\n  epoch: 3\n", [], ["c.yml", "unknown key 'train.epoch'", "epochs"]),
        ("trian:\n  epochs: 3\n", [], ["c.yml", "unknown key 'trian'"]),
        ("", ["train.epoch=3"], ["-o train.epoch=3", "unknown key 'train.epoch'"]),
        ("", ["train.epochs.x=3"], ["'train.epochs' is not a section"]),
        ("", ["train.epochs"], ["expected key.sub=value"]),
        ("train:\n  epochs: five\n", [], ["c.yml", "'train.epochs' must be an integer", "'five'"]),
        ("", ["train.epochs=2.5"], ["-o train.epochs=2.5", "must be an integer"]),
        ("", ["train.lr=fast"], ["'train.lr' must be a number"]),
        ("train: 3\n", [], ["'train' must be a section"]),
        ("", ["train.epochs=0"], ["-o train.epochs=0", "'train.epochs' must be >= 1"]),
        ("train:\n  epochs: -1\n", [], ["c.yml", "'train.epochs' must be >= 1"]),
        ("", ["train.batch_size=0"], ["'train.batch_size' must be >= 1"]),
        ("", ["train.lr=0"], ["'train.lr' must be > 0"]),
        ("", ["train.lr=-0.1"], ["'train.lr' must be > 0"]),
        ("", ["train.device=tpu"], ["'train.device' must be one of auto, cpu, gpu"]),
        ("", ["data.std=0"], ["'data.std' must be > 0"]),
        ("", ["data.train_limit=-5"], ["'data.train_limit' must be >= 0"]),
        ("", ["data.val_size=60000"], ["'data.val_size' must be >= 0 and < 60000"]),
        ("", ["train.optimizer=sgd"], ["'train.optimizer' must be one of adam, adamw"]),
        ("", ["train.schedule=step"], ["'train.schedule' must be one of constant, cosine"]),
        ("", ["train.weight_decay=-1"], ["'train.weight_decay' must be >= 0"]),
        ("", ["train.warmup_epochs=5"], ["'train.warmup_epochs' must be >= 0 and < train.epochs"]),
        ("", ["train.label_smoothing=1"], ["'train.label_smoothing' must be >= 0 and < 1"]),
        ("", ["train.early_stop=2"], ["'train.early_stop' must be 0 unless data.val_size > 0"]),
        ("", ["augment.rotate=90"], ["'augment.rotate' must be between 0 and 45"]),
        ("augment:\n  shift: 10\n", [], ["c.yml", "'augment.shift' must be between 0 and 6"]),
        ("augment:\n  flip: true\n", [], ["c.yml", "unknown key 'augment.flip'", "rotate"]),
        ("", ["augment.shear=2"], ["'augment.shear' must be between 0 and 1"]),
        ("", ["augment.elastic=-1"], ["'augment.elastic' must be between 0 and 4 pixels"]),
        ("", ["augment.stroke=1.5"], ["'augment.stroke' must be between 0 and 1"]),
        ("", ["data.typeset=-5"], ["'data.typeset' must be >= 0"]),
        ("", ["run_name=a/b"], ["'run_name' must be a non-empty name"]),
        ("[1, 2]\n", [], ["c.yml", "expected a mapping"]),
        ("train: [\n", [], ["c.yml", "not valid YAML", "line"]),
    ],
)
def test_bad_config_is_one_clear_error(tmp_path, text, overrides, fragments):
    with pytest.raises(UserError) as err:
        load_config(write(tmp_path, text), overrides)
    message = str(err.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_missing_config_file(tmp_path):
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "nope.yml")


def test_saved_config_loads_back_the_same(tmp_path):
    cfg = load_config(
        ROOT / "configs" / "fcnet.yml", ["model.args.hidden_size=64", "train.lr=0.01"]
    )
    save_config(cfg, tmp_path / "config.yml")
    assert load_config(tmp_path / "config.yml") == cfg
    assert isinstance(cfg, Config)
