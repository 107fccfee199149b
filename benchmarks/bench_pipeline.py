"""Benchmark the pipeline on the full dataset and write the README's results table.

    python benchmarks/bench_pipeline.py [--naive-epochs 1] [--skip-repro]

1. `dvc repro --force` stage by stage, timing each and reading its peak memory (wait4 ru_maxrss).
2. A head-only change: train@MobileNetV2 + evaluate@MobileNetV2 + select re-run on cached features.
3. A no-op `dvc repro`.
4. The naive route for comparison: MobileNetV2 fully fine-tuned on the augmented training images
   (every layer but the pretrained BatchNorm trainable, same image size and head, no cached
   features) for --naive-epochs epochs, scored on the test split.
Writes benchmarks/results/pipeline.json and prints a markdown table. Run from the project root
after the dataset is in place; it takes about as long as a full run plus the naive epochs.
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project root, for facemask and stages
RESULTS = Path("benchmarks/results")


def timed(command: str) -> dict:
    """Run a shell command; return wall seconds, peak RSS (MiB) of the process tree, exit status."""
    started = time.perf_counter()
    process = subprocess.Popen(command, shell=True)
    _, status, usage = os.wait4(process.pid, 0)
    return {"command": command, "seconds": round(time.perf_counter() - started, 1),
            "peak_mib": round(usage.ru_maxrss / 1024), "status": os.waitstatus_to_exitcode(status)}


def stage_commands() -> list[tuple[str, str]]:
    """(stage name, command) in DAG order, from `dvc stage list` and dvc.yaml's cmd lines."""
    names = subprocess.run(["dvc", "stage", "list", "--name-only"], capture_output=True, text=True,
                           check=True).stdout.split()
    return [(name, f"dvc repro --force --single-item {shlex.quote(name)}") for name in names]


def naive_fine_tune(epochs: int) -> dict:
    """Full fine-tuning of MobileNetV2 on the images, without cached features."""
    import keras

    from facemask import CLASSES
    from facemask.backbones import resolve_weights
    from facemask.evaluation import classification_metrics
    from facemask.images import load_batch
    from facemask.model import build_classifier
    from facemask.splits import split_images
    from stages.features import training_images
    from stages.train import fine_tune_model

    params = yaml.safe_load(Path("params.yaml").read_text())
    spec = params["features"]["backbones"]["MobileNetV2"]
    train = params["train"]["backbones"]["MobileNetV2"]
    keras.utils.set_random_seed(1337)
    model = build_classifier("MobileNetV2", spec["image_size"],
                             resolve_weights("MobileNetV2", spec["weights"], params["features"]["weights_dir"]),
                             train["dropout"])
    fine_tune_model(model, {"fine_tune_layers": "all", "fine_tune_learning_rate": 1e-4}, pretrained=True)
    paths, labels = training_images()
    test_paths, test_y = split_images("test")
    started = time.perf_counter()
    images = load_batch(paths, spec["image_size"])
    model.fit(images, labels, epochs=epochs, batch_size=32, verbose=2, shuffle=True)
    seconds = time.perf_counter() - started
    predictions = model.predict(load_batch(test_paths, spec["image_size"]), verbose=0).argmax(axis=1)
    metrics = classification_metrics(test_y, predictions)
    return {"epochs": epochs, "seconds": round(seconds, 1), "train_images": len(paths),
            "test_accuracy": metrics["accuracy"], "test_macro_f1": metrics["macro_f1"],
            "classes": list(CLASSES)}


def table(results: dict) -> str:
    lines = ["| backbone | weights | px | test accuracy (95% CI) | macro-F1 | recall wm_old / wm_young / "
             "wo_old / wo_young | worst source (acc) | features + train s | img/s | peak MiB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in results["backbones"].items():
        test = row["test"]
        recall = " / ".join(f"{test['per_class'][c]['recall']:.3f}" for c in test["per_class"])
        worst = min(test["accuracy_by_source"].items(), key=lambda kv: kv[1]["accuracy"])
        lines.append(
            f"| {name} | {row['weights']} | {row['image_size']} | {test['accuracy']:.3f} "
            f"({test['accuracy_ci95'][0]:.3f}-{test['accuracy_ci95'][1]:.3f}) | {test['macro_f1']:.3f} | "
            f"{recall} | {worst[0]} ({worst[1]['accuracy']:.3f}) | {row['feature_seconds']:.0f} + "
            f"{row['train_seconds']:.0f} | {test['images_per_second']:.0f} | {row['peak_mib']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--naive-epochs", type=int, default=3)
    parser.add_argument("--skip-repro", action="store_true", help="reuse the last run's stage timings")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "pipeline.json"
    results = json.loads(out.read_text()) if args.skip_repro and out.is_file() else {}
    if not args.skip_repro:
        results["stages"] = {}
        for name, command in stage_commands():
            results["stages"][name] = timed(command)
            if results["stages"][name]["status"]:
                sys.exit(f"stage {name} failed; fix it and run the benchmark again")
        results["full_repro_seconds"] = round(sum(r["seconds"] for r in results["stages"].values()), 1)
        out.write_text(json.dumps(results, indent=2) + "\n")
    results["head_only_rerun_seconds"] = sum(
        timed(f"python -m {m}")["seconds"]
        for m in ("stages.train MobileNetV2", "stages.evaluate MobileNetV2",
                  "stages.select_best " + " ".join(yaml.safe_load(Path("params.yaml").read_text())["train"]["backbones"]))
    )
    subprocess.run(["dvc", "commit", "-f", "-q"], check=True)
    results["noop_repro"] = timed("dvc repro")
    results["backbones"] = {}
    for name in yaml.safe_load(Path("params.yaml").read_text())["train"]["backbones"]:
        val = json.loads(Path(f"metrics/{name}_val.json").read_text())
        stages = results.get("stages", {})
        peak = max(stages.get(f"{s}@{name}", {}).get("peak_mib", 0) for s in ("features", "train", "evaluate"))
        results["backbones"][name] = {**val, "test": json.loads(Path(f"metrics/{name}.json").read_text()),
                                      "peak_mib": peak}
    if args.naive_epochs:
        results["naive_mobilenetv2"] = naive_fine_tune(args.naive_epochs)
        # The cached route trained its head for `head_epochs`; the naive route would need as many epochs.
        cached = results["backbones"]["MobileNetV2"]
        head_epochs = len(Path("plots/MobileNetV2/history.csv").read_text().strip().splitlines()) - 1
        naive_seconds = results["naive_mobilenetv2"]["seconds"] / args.naive_epochs * head_epochs
        results["speedup"] = {"head_epochs": head_epochs, "naive_seconds_for_as_many_epochs": round(naive_seconds),
                              "cached_seconds": cached["feature_seconds"] + cached["train_seconds"],
                              "ratio": round(naive_seconds / (cached["feature_seconds"] + cached["train_seconds"]), 1)}
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(json.dumps({k: results[k] for k in results if k not in ("backbones", "stages")}, indent=2))


if __name__ == "__main__":
    main()
