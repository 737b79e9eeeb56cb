"""The benchmark's results (benchmark.run) as ratios and as Markdown tables (results.md)."""

from __future__ import annotations

BATCHES = ("1", "64", "1024")
PROFILE_ROWS = 6  # slowest layers or ops shown per profile


def ratios(r: dict) -> dict:
    """Each goal's figure as this project's number over its peer's."""
    train, inf, out = r["training"], r["inference"], {}
    if "seconds_per_epoch" in train.get("project", {}):
        for other in ("tutorial", "pytorch"):
            if "seconds_per_epoch" in train[other]:
                out[f"train_project_over_{other}"] = (
                    train["project"]["seconds_per_epoch"] / train[other]["seconds_per_epoch"]
                )
    race = r.get("time_to_accuracy", {})
    times = [race.get(case, {}).get("seconds_to_target") for case in ("project", "pytorch")]
    if all(times):
        out["time_to_target_project_over_pytorch"] = times[0] / times[1]
    for other in ("onnxruntime", "dygraph"):
        if "skipped" not in inf[other]:
            for batch in BATCHES:
                out[f"paddle_inference_over_{other}_images_per_second_b{batch}"] = (
                    inf["paddle_inference"][batch]["images_per_second"]
                    / inf[other][batch]["images_per_second"]
                )
    if "skipped" not in inf["onnxruntime"]:
        out["paddle_inference_over_onnxruntime_latency_b1"] = (
            inf["paddle_inference"]["1"]["p50_ms"] / inf["onnxruntime"]["1"]["p50_ms"]
        )
    return out


def to_markdown(r: dict) -> str:
    env = r["environment"]
    lines = [
        f"{env['cores']} cores ({_processor(env)}); "
        + ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v),
    ]
    lines += _training(r) + _race(r) + _inference(r) + _profiles(r) + _service(r) + _commands(r)
    return "\n".join(lines) + "\n"


def _processor(env: dict) -> str:
    """The processor's name, maker, family and model, widest vector instructions, and the MKL
    code path asked for, as far as the results say."""
    p = env.get("processor") or {}
    maker = p.get("vendor") and f"{p['vendor']} family {p['family']} model {p['model']}"
    mkl = p.get("mkl_path") and f"MKL_DEBUG_CPU_TYPE={p['mkl_path']}"
    return ", ".join(str(part) for part in (env["cpu"], maker, p.get("isa"), mkl) if part)


def _training(r: dict) -> list[str]:
    if not r["training"]:
        return []
    lines = [
        "",
        "| training path | s / epoch (median) | images/s | test accuracy | project time / this |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    project = r["training"].get("project", {}).get("seconds_per_epoch")
    for case, t in r["training"].items():
        if skipped := _row(case, t, 5, "error"):
            lines.append(skipped)
            continue
        ratio = f"{project / t['seconds_per_epoch']:.2f}" if project else ""
        lines.append(
            f"| {case} | {t['seconds_per_epoch']:.1f} | {t['images_per_second']:,.0f} "
            f"| {t['test_acc']:.2%} | {ratio} |"
        )
    return lines


def _race(r: dict) -> list[str]:
    race = r.get("time_to_accuracy")
    if not race:
        return []
    lines = [
        "",
        f"Time to {race['target']:.1%} test accuracy ({race['config']}, up to {race['epochs']} "
        "epochs; training time, the test evaluations after each epoch excluded):",
        "",
        "| path | test accuracy after each epoch | s / epoch | seconds to target |",
        "| --- | --- | ---: | ---: |",
    ]
    for case in ("project", "pytorch"):
        t = race[case]
        if skipped := _row(case, t, 4, "error"):
            lines.append(skipped)
            continue
        accs = ", ".join(f"{a:.2%}" for a in t["epoch_test_acc"])
        reached = t["seconds_to_target"]
        lines.append(
            f"| {case} | {accs} | {t['seconds_per_epoch']:.1f} | "
            + (f"{reached:.1f} |" if reached else "not reached |")
        )
    return lines


def _inference(r: dict) -> list[str]:
    lines = [
        "",
        "| inference | batch 1 p50 / p99 (ms) | batch 64 images/s | batch 1024 images/s |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, res in r["inference"].items():
        if skipped := _row(name, res, 4):
            lines.append(skipped)
            continue
        b1 = res["1"]
        lines.append(
            f"| {name} | {b1['p50_ms']:.3f} / {b1['p99_ms']:.3f} "
            f"| {res['64']['images_per_second']:,.0f} | {res['1024']['images_per_second']:,.0f} |"
        )
    ratios = r.get("ratios", {})
    if "paddle_inference_over_onnxruntime_latency_b1" in ratios:
        lines += [
            "",
            "Paddle Inference over ONNX Runtime: batch-1 latency "
            f"{ratios['paddle_inference_over_onnxruntime_latency_b1']:.2f}x, images/s at batch 64 "
            f"{ratios['paddle_inference_over_onnxruntime_images_per_second_b64']:.2f}x, at 1024 "
            f"{ratios['paddle_inference_over_onnxruntime_images_per_second_b1024']:.2f}x.",
        ]
    return lines


def _profiles(r: dict) -> list[str]:
    lines = []
    predictor = r.get("predictor_profile", {})
    if "paddle" in predictor:
        lines += ["", f"Where batch {predictor['batch']} goes (ms per call, slowest first):", ""]
        lines += ["| Paddle Inference (oneDNN primitive) | ms | ONNX Runtime (node) | ms |"]
        lines += ["| --- | ---: | --- | ---: |"]
        ort = predictor["onnxruntime"] if isinstance(predictor["onnxruntime"], list) else []
        for i in range(PROFILE_ROWS):
            left = predictor["paddle"][i] if i < len(predictor["paddle"]) else ("", None)
            right = ort[i] if i < len(ort) else ("", None)
            lines.append(f"| {left[0]} | {_num(left[1])} | {right[0]} | {_num(right[1])} |")
    batch1 = r.get("batch1_profile")
    if isinstance(batch1, list) and batch1:
        ops = ", ".join(f"{name} {us:.1f}" for name, us in batch1)
        lines += ["", f"Batch 1 on Paddle's plain kernels, microseconds per image by op: {ops}."]
    step = r.get("training_profile")
    if step:
        ops = ", ".join(f"{name} {share:.0%}" for name, share in step[:PROFILE_ROWS])
        lines += ["", f"A LeNet training step in Paddle dygraph (batch 64), share of CPU: {ops}."]
    return lines


def _service(r: dict) -> list[str]:
    service = r.get("service")
    if not service:
        return []
    if "skipped" in service:
        return ["", f"Service: skipped: {service['skipped']}"]
    lines = [
        "",
        f"deploy/serve.py ({service['workers']} workers), JSON posts of a 112x112 PNG, "
        "16 connections:",
        "",
        "| client | requests | errors | requests/s | p50 (ms) | p90 (ms) | p99 (ms) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for client, key, errors in (("wrk", "wrk", "non_2xx"), ("loadtest.py", "loadtest", "failed")):
        res = service[key]
        if skipped := _row(client, res, 7):
            lines.append(skipped)
            continue
        latency = res["latency_ms"]
        lines.append(
            f"| {client} | {res['requests']:,} | {res[errors]} | {res['requests_per_second']:,.0f} "
            f"| {latency['p50']:.1f} | {latency['p90']:.1f} | {latency['p99']:.1f} |"
        )
    return lines


def _commands(r: dict) -> list[str]:
    cli = r["infer_cli"]
    lines = [
        "",
        "| deploy/infer.py, process start included | seconds (median of 3) |",
        "| --- | ---: |",
    ]
    lines += [f"| {k.replace('_', ' ')} | {v['seconds']:.2f} |" for k, v in cli.items()]
    if "number" in r:
        n = r["number"]
        lines.append("")
        for kind, paper in (("paper", "plain"), ("ruled", "ruled")):
            t = n[kind]
            lines.append(
                f"Reading a {n['digits']}-digit handwritten number on {paper} paper "
                f"({t['pixels'][1]}x{t['pixels'][0]} px): {t['p50_ms']:.1f} ms median, "
                f"{t['p99_ms']:.1f} ms p99 (process start excluded)."
            )
    return lines


def _row(name: str, result: dict, columns: int, reason: str = "skipped") -> str | None:
    """A table row saying why `result` has no numbers, or None when it has them."""
    if reason not in result:
        return None
    return f"| {name} | skipped: {result[reason]} |" + " |" * (columns - 2)


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"
