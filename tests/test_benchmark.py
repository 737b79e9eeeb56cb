import numpy as np
import pytest

from mnist_paddle.bench import benchmark, profiles, report, training


def test_inference_benchmark_measures_every_batch_size(exported, trained, monkeypatch):
    cfg, _ = trained
    monkeypatch.setattr(benchmark, "CALLS", {1: 20, 64: 10, 1024: 3})
    results = benchmark.bench_inference(exported, cfg.run_dir / "final")
    for name in ("paddle_inference", "onnxruntime", "dygraph"):
        res = results[name]
        if "skipped" in res:  # ONNX Runtime or paddle2onnx missing
            assert name == "onnxruntime" and "pip install" in res["skipped"]
            continue
        assert set(res) == {"1", "64", "1024"}
        for batch, stats in res.items():
            assert 0 < stats["p50_ms"] <= stats["p99_ms"]
            assert np.isclose(stats["images_per_second"], int(batch) / (stats["p50_ms"] / 1000))


def test_markdown_reports_each_case():
    results = {
        "environment": {
            "cores": 2,
            "cpu": "x",
            "versions": {"paddlepaddle": "3.3.1", "torch": None},
        },
        "training": {
            "project": {"seconds_per_epoch": 16.0, "images_per_second": 3750.0, "test_acc": 0.98},
            "pytorch": {"error": "No module named 'torch'"},
        },
        "inference": {"onnxruntime": {"skipped": "onnxruntime not installed"}},
        "infer_cli": {"1_file": {"seconds": 1.3}},
        "time_to_accuracy": {
            "config": "configs/lenet_fast.yml",
            "target": 0.99,
            "epochs": 2,
            "project": {
                "epoch_test_acc": [0.985, 0.991],
                "seconds_per_epoch": 12.0,
                "seconds_to_target": 24.5,
            },
            "pytorch": {"error": "No module named 'torch'"},
        },
    }
    text = report.to_markdown(results)
    assert "| project | 98.50%, 99.10% | 12.0 | 24.5 |" in text
    assert "| project | 16.0 | 3,750 | 98.00% | 1.00 |" in text
    assert "| pytorch | skipped: No module named 'torch' |" in text
    assert "| onnxruntime | skipped: onnxruntime not installed |" in text
    assert "| 1 file | 1.30 |" in text


def test_dygraph_rows_load_the_checkpoint_with_the_projects_checks(exported, tmp_path):
    (tmp_path / "final.json").write_text("{}")
    (tmp_path / "final.pdparams").write_text("not parameters")
    results = benchmark._dygraph(tmp_path / "final")
    assert "not an mnist-paddle checkpoint description" in results["skipped"]


def test_time_to_accuracy_counts_training_seconds_up_to_the_first_epoch_at_target():
    result = {"epoch_seconds": [10.0, 11.0, 12.0], "epoch_test_acc": [0.97, 0.9905, 0.989]}
    assert training.time_to_accuracy(result, 0.99) == 21.0
    assert training.time_to_accuracy(result, 0.995) is None


def test_the_pytorch_case_follows_paddles_one_cycle_schedule():
    """The race compares one recipe: PyTorch's schedule must give Paddle's learning rates."""
    torch = pytest.importorskip("torch", reason="PyTorch is optional (requirements-bench.txt)")
    import paddle

    from mnist_paddle.train.config import TrainConfig
    from mnist_paddle.train.optim import learning_rate

    recipe = TrainConfig(lr=0.003, schedule="onecycle", epochs=2)
    ours = learning_rate(recipe, steps_per_epoch=50)
    assert isinstance(ours, paddle.optimizer.lr.OneCycleLR)
    opt = torch.optim.Adam(torch.nn.Linear(2, 2).parameters(), lr=recipe.lr)
    theirs = training.torch_schedule(opt, recipe, total_steps=100)
    for _ in range(100):
        assert opt.param_groups[0]["lr"] == pytest.approx(ours.last_lr, rel=1e-9)
        opt.step()
        theirs.step()
        ours.step()


def test_the_pytorch_case_smooths_labels_as_the_project_does():
    torch = pytest.importorskip("torch", reason="PyTorch is optional (requirements-bench.txt)")
    import paddle

    from mnist_paddle.train.optim import SmoothedCrossEntropy

    logits = np.random.default_rng(0).normal(size=(8, 10)).astype(np.float32)
    labels = np.arange(8, dtype=np.int64)
    ours = SmoothedCrossEntropy(0.1)(paddle.to_tensor(logits), paddle.to_tensor(labels[:, None]))
    theirs = torch.nn.CrossEntropyLoss(label_smoothing=0.1)(
        torch.from_numpy(logits), torch.from_numpy(labels)
    )
    assert float(ours) == pytest.approx(theirs.item(), rel=1e-5)


def test_the_pytorch_case_augments_as_the_project_does():
    torch = pytest.importorskip("torch", reason="PyTorch is optional (requirements-bench.txt)")
    import paddle

    from mnist_paddle.train.config import AugmentConfig
    from mnist_paddle.train.loader import TrainLoader

    a = AugmentConfig(rotate=10, scale=0.1, shift=2, shear=0.2, stroke=0.3)
    images = np.random.default_rng(1).uniform(-1, 1, (4, 1, 28, 28)).astype(np.float32)
    labels = np.zeros((4, 1), np.int64)
    loader = TrainLoader(images, labels, batch_size=4, seed=0, augment=a, background=-1.0)
    ours = loader._augment(paddle.to_tensor(images), np.random.default_rng(5)).numpy()
    augment = training._torch_augmenter(a, background=-1.0)
    theirs = augment(torch.from_numpy(images), np.random.default_rng(5)).numpy()
    assert np.abs(ours - images).max() > 0.5  # it did move the pixels
    np.testing.assert_allclose(theirs, ours, atol=1e-5)


def test_the_pytorch_case_refuses_a_recipe_it_cannot_follow(tmp_path):
    pytest.importorskip("torch", reason="PyTorch is optional (requirements-bench.txt)")
    config = tmp_path / "aug.yml"
    config.write_text("train:\n  schedule: onecycle\naugment:\n  elastic: 1\n")
    with pytest.raises(ValueError, match="no elastic augmentation"):
        training.train_pytorch(1, "data/mnist", str(config))


def test_predictor_profile_names_each_layer_for_both_runtimes(exported):
    result = profiles.predictor_profile(exported, batch=64)
    kinds = {name.split()[0] for name, _ in result["paddle"]}
    assert {"convolution", "pooling", "inner_product"} <= kinds
    assert all(ms > 0 for _, ms in result["paddle"])
    ort_ops = {name.split()[0] for name, _ in result["onnxruntime"]}
    assert "Conv" in ort_ops
    times = [ms for _, ms in result["paddle"]]
    assert times == sorted(times, reverse=True)


def test_batch1_and_training_profiles_name_the_ops(exported):
    ops = dict(profiles.batch1_profile(exported, calls=200))
    assert {"pd_op.conv2d", "pd_op.matmul", "pd_op.pool2d"} <= set(ops)
    shares = dict(profiles.training_profile(batch=16, steps=3))
    assert any("Conv2dGrad" in name for name in shares) and any("add" in n for n in shares)
    assert 0.9 < sum(shares.values()) < 1.1  # the ops' shares of the step add up


def test_the_service_benchmark_loads_the_service_with_wrk_and_the_checking_client(exported):
    import shutil

    from mnist_paddle.bench.benchmark import SERVICE_LABEL, SERVICE_SAMPLE
    from mnist_paddle.bench.loadtest import bench_service

    result = bench_service(exported, SERVICE_SAMPLE.read_bytes(), SERVICE_LABEL, seconds=1)
    assert result["workers"] >= 1
    load = result["loadtest"]
    assert load["failed"] == 0 and load["requests"] == 5000, load["failures"]
    if shutil.which("wrk") is None:
        assert "apt install wrk" in result["wrk"]["skipped"]
        pytest.skip("wrk is not installed (apt install wrk): only the Python client ran")
    wrk = result["wrk"]
    assert wrk["requests"] > 0 and wrk["non_2xx"] == 0 and wrk["socket_errors"] is None
    assert 0 < wrk["latency_ms"]["p50"] <= wrk["latency_ms"]["p99"]
