import numpy as np

from mnist_paddle.bench import benchmark


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
    }
    text = benchmark.to_markdown(results)
    assert "| project | 16.0 | 3,750 | 98.00% | 1.00 |" in text
    assert "| pytorch | skipped: No module named 'torch' |" in text
    assert "| onnxruntime | skipped: onnxruntime not installed |" in text
    assert "| 1 file | 1.30 |" in text


def test_dygraph_rows_load_the_checkpoint_with_the_projects_checks(exported, tmp_path):
    (tmp_path / "final.json").write_text("{}")
    (tmp_path / "final.pdparams").write_text("not parameters")
    results = benchmark._dygraph(tmp_path / "final")
    assert "not an mnist-paddle checkpoint description" in results["skipped"]
