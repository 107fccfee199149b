"""Benchmark the pipeline on the full dataset and write the README's results table.

    python benchmarks/bench_pipeline.py [--compare MobileNetV2] [--head-only Xception] [--seeds 1 2 3] [--skip-repro]

1. `dvc repro --force` stage by stage, timing each and reading its peak memory (wait4 ru_maxrss).
2. A head-only change: train -> evaluate -> select re-run for each --head-only candidate.
3. A no-op `dvc repro`.
4. The cached route against the naive one: the --compare candidate fine-tunes every layer on the
   images in the pipeline (no cached features); here the same backbone is also trained the cached
   way (head only, on its cached features) and both are scored on the test split.
5. Optionally, run-to-run spread: the --compare candidate trained again as one model with each of
   --seeds, scored on val and test: how much of a difference between two runs is the seed alone. (A
   seed-averaged candidate already reports each member's own scores in its metrics.)
Writes benchmarks/results/pipeline.json and prints a markdown table. Run from the project root
after the dataset is in place; it takes a few minutes longer than a full run.
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from facemask.files import read_json
from facemask.outputs import test_metrics, val_metrics

RESULTS = Path("benchmarks/results")
# As the frozen candidates: one model (seed train.seed).
HEAD_ONLY = {"epochs": 60, "batch_size": 64, "learning_rate": 0.001, "fine_tune_epochs": 0, "seeds": None}


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


def retrain(name: str, overrides: dict) -> dict:
    """Train candidate `name` again in this process, its train params changed by `overrides`, from its cached
    features (as the train stage does, op determinism on); score it on val and test. Logs to a throwaway
    MLflow store and writes nothing of the pipeline's."""
    import mlflow

    from facemask.checkpoint import Checkpoint
    from facemask.evaluation import classification_metrics
    from facemask.model import predict_labels
    from facemask.params import TrainingRecipe, load_params
    from facemask.splits import split_images
    from stages.train import combined, member_seeds, train_members

    params = TrainingRecipe.model_validate(load_params().recipe(name).model_dump() | overrides)
    with tempfile.TemporaryDirectory() as scratch:
        mlflow.set_tracking_uri(f"sqlite:///{scratch}/bench.db")
        with mlflow.start_run():
            meta, models, rows, seconds = train_members(name, params, {
                seed: Checkpoint(Path(scratch) / str(seed), "bench") for seed in member_seeds(params)})
    model = combined(name, models)
    scores = {}
    for split in ("val", "test"):
        paths, labels = split_images(split)
        metrics = classification_metrics(labels, predict_labels(model, paths))
        scores |= {f"{split}_accuracy": metrics["accuracy"], f"{split}_macro_f1": metrics["macro_f1"]}
    return {"candidate": name, **overrides, "epochs_run": len(rows), "feature_seconds": meta["seconds"],
            "train_seconds": round(sum(seconds.values()), 1), **scores}


def cached_route(name: str) -> dict:
    """`name` trained the cached way instead: its head alone on the cached features (HEAD_ONLY settings)."""
    result = retrain(name, HEAD_ONLY)
    return result | {"seconds": round(result["feature_seconds"] + result["train_seconds"], 1)}


def seed_spread(name: str, seeds: list[int]) -> dict:
    """`name` trained with each train seed in `seeds`: how far one run's scores are from another's."""
    runs = [retrain(name, {"seeds": [seed]}) for seed in seeds]
    spread = {}
    for key in ("val_accuracy", "val_macro_f1", "test_accuracy", "test_macro_f1"):
        values = [run[key] for run in runs]
        spread[key] = {"min": min(values), "max": max(values), "mean": sum(values) / len(values)}
    return {"candidate": name, "runs": runs, "spread": spread}


def table(results: dict) -> str:
    lines = ["| candidate | weights | px | test accuracy (95% CI) | macro-F1 | recall wm_old / wm_young / "
             "wo_old / wo_young | worst source (acc) | re-framed macro-F1 | features + train s | img/s | peak MiB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in results["candidates"].items():
        test = row["test"]
        recall = " / ".join(f"{test['per_class'][c]['recall']:.3f}" for c in test["per_class"])
        worst = min(test["accuracy_by_source"].items(), key=lambda kv: kv[1]["accuracy"])
        models = f" ({len(row['seeds'])} seeds averaged)" if len(row.get("seeds", [])) > 1 else ""
        lines.append(
            f"| {name}{models} | {row['weights']} | {row['image_size']} | {test['accuracy']:.3f} "
            f"({test['accuracy_ci95'][0]:.3f}-{test['accuracy_ci95'][1]:.3f}) | {test['macro_f1']:.3f} | "
            f"{recall} | {worst[0]} ({worst[1]['accuracy']:.3f}) | {test['reframed']['mean_macro_f1']:.3f} | "
            f"{row['feature_seconds']:.0f} + "
            f"{row['train_seconds']:.0f} | {test['images_per_second']:.0f} | {row['peak_mib']} |")
    return "\n".join(lines)


def members_table(results: dict) -> str:
    """Each member of a seed-averaged candidate on its own, then the average, on val and test."""
    lines = ["| candidate | model | val accuracy / macro-F1 | test accuracy / macro-F1 |", "|---|---|---|---|"]
    for name, row in results["candidates"].items():
        for member in row["val"].get("members", {}):
            val, test = row["val"]["members"][member], row["test"]["members"][member]
            lines.append(f"| {name} | {member} | {val['accuracy']:.3f} / {val['macro_f1']:.3f} | "
                         f"{test['accuracy']:.3f} / {test['macro_f1']:.3f} |")
        if "members" in row["val"]:
            lines.append(f"| {name} | **average** | {row['val']['accuracy']:.3f} / {row['val']['macro_f1']:.3f} | "
                         f"{row['test']['accuracy']:.3f} / {row['test']['macro_f1']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", default="MobileNetV2", help="candidate whose cached route is measured too "
                        "(one that fine-tunes every layer in params.yaml); empty to skip")
    parser.add_argument("--head-only", nargs="*", default=["Xception"],
                        help="candidates whose train -> evaluate -> select re-run is timed")
    parser.add_argument("--skip-repro", action="store_true", help="reuse the last run's stage timings")
    parser.add_argument("--seeds", nargs="*", type=int, default=[],
                        help="train seeds the --compare candidate is trained with again, one model each (run-to-run spread)")
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
    reruns = {  # what `dvc repro` re-runs after a change to candidates.<name>.train
        name: round(sum(timed(f"python -m {module}")["seconds"] for module in (
            f"stages.train {name}", f"stages.evaluate {name}", "stages.select_best")), 1)
        for name in args.head_only}
    results["head_only_rerun_seconds"] = results.get("head_only_rerun_seconds", {}) | reruns
    subprocess.run(["dvc", "commit", "-f", "-q"], check=True)
    results["noop_repro"] = timed("dvc repro")
    results["candidates"] = {}
    for name in yaml.safe_load(Path("params.yaml").read_text())["candidates"]:
        stages = results.get("stages", {})
        peak = max(stages.get(f"{s}@{name}", {}).get("peak_mib", 0) for s in ("features", "train", "evaluate"))
        results["candidates"][name] = {**read_json(val_metrics(name)), "test": read_json(test_metrics(name)),
                                       "peak_mib": peak}
    if args.compare:
        # The pipeline's candidate fine-tunes every layer on the images (the naive route, no cached
        # features); the same backbone trained the cached way is the comparison, one model against one:
        # a seed-averaged candidate's first member (its own train time and test score).
        full = results["candidates"][args.compare]
        first = f"seed_{full['seeds'][0]}"
        naive = (full["member_train_seconds"][first], full["test"]["members"][first]["macro_f1"]) \
            if len(full["seeds"]) > 1 else (full["train_seconds"], full["test"]["macro_f1"])
        cached = results["cached_route"] = cached_route(args.compare)
        # ratio: from images (features + head); ratio_features_cached: a re-run once the features
        # are a DVC output, as after a head-only change (head training alone).
        results["speedup"] = {"candidate": args.compare, "full_fine_tune_seconds": naive[0],
                              "full_fine_tune_test_macro_f1": naive[1],
                              "cached_seconds": cached["seconds"], "cached_head_seconds": cached["train_seconds"],
                              "cached_test_macro_f1": cached["test_macro_f1"],
                              "ratio": round(naive[0] / cached["seconds"], 2),
                              "ratio_features_cached": round(naive[0] / cached["train_seconds"], 1)}
    if args.seeds:
        results["seed_spread"] = seed_spread(args.compare or "MobileNetV2", args.seeds)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(members_table(results))
    print(json.dumps({k: results[k] for k in results if k not in ("candidates", "stages")}, indent=2))


if __name__ == "__main__":
    main()
