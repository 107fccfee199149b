"""Benchmark the pipeline on the full dataset and write the README's results table.

    python benchmarks/bench_pipeline.py [--baseline COMMIT] [--compare MobileNetV2] [--head-only Xception]
                                        [--seeds 1 2 3] [--skip-repro]

0. Optionally, side by side: the same full run first for an earlier --baseline commit, in a git worktree
   beside this checkout with the same dataset; its stage times, peak memory and champion's test scores,
   and an exact McNemar test on the test photos that only one of the two champions gets right.
1. `dvc repro --force` stage by stage, timing each and reading its peak memory (wait4 ru_maxrss); from
   those times, what a change to the champion's training re-runs (the stages downstream of its train).
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
import csv
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from facemask.core.files import read_json
from facemask.core.outputs import split_report

RESULTS = Path("benchmarks/results")
# As the frozen candidates: one model (seed train.seed).
HEAD_ONLY = {"epochs": 60, "batch_size": 64, "learning_rate": 0.001, "fine_tune_epochs": 0, "seeds": None}


def timed(command: str, cwd: Path | None = None) -> dict:
    """Run a shell command; return wall seconds, peak RSS (MiB) of the process tree, exit status."""
    started = time.perf_counter()
    process = subprocess.Popen(command, shell=True, cwd=cwd)
    _, status, usage = os.wait4(process.pid, 0)
    return {"command": command, "seconds": round(time.perf_counter() - started, 1),
            "peak_mib": round(usage.ru_maxrss / 1024), "status": os.waitstatus_to_exitcode(status)}


def dvc_lines(args: list[str], cwd: Path | None) -> str:
    return subprocess.run(["dvc", *args], capture_output=True, text=True, check=True, cwd=cwd).stdout


def full_repro(cwd: Path | None = None) -> dict:
    """`dvc repro --force` one stage at a time in DAG order (`dvc stage list`), each timed; the total, and
    what a change to the champion's training re-runs: the stages downstream of its train stage. The
    features' shared cache (data/features/shared, rebuilt by the features stages) is emptied first, so
    that every feature is computed as on a fresh clone."""
    shutil.rmtree((cwd or Path()) / "data/features/shared", ignore_errors=True)
    stages = {}
    for name in dvc_lines(["stage", "list", "--name-only"], cwd).split():
        stages[name] = timed(f"dvc repro --force --single-item {shlex.quote(name)}", cwd)
        print(f"bench_pipeline: {name}{f' ({cwd.name})' if cwd else ''} {stages[name]['seconds']} s, "
              f"peak {stages[name]['peak_mib']} MiB", flush=True)
        if stages[name]["status"]:
            sys.exit(f"stage {name} failed{f' in {cwd}' if cwd else ''}; fix it and run the benchmark again")
    champion = champion_name(cwd or Path())
    rerun = re.findall(r"Running stage '([^']+)'",
                       dvc_lines(["repro", "--dry", "--force", "--downstream", f"train@{champion}"], cwd))
    return {"stages": stages, "full_repro_seconds": round(sum(r["seconds"] for r in stages.values()), 1),
            "champion_train_change_seconds": {"champion": champion, "stages": rerun,
                                              "seconds": round(sum(stages[s]["seconds"] for s in rerun), 1)}}


def baseline_checkout(commit: str) -> Path:
    """A git worktree of `commit` beside this checkout (so ../shared resolves alike), with this checkout's
    dataset linked in (ingest.source): the same photos, the earlier code, params and pipeline."""
    from facemask.core.params import load_params

    path = Path.cwd().resolve().parent / f"facemask-bench-{commit[:12]}"
    if not path.is_dir():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), commit], check=True)
    source = Path(load_params().ingest.source)
    if source.is_dir() and not (path / source).exists():
        shutil.copytree(source.resolve(), path / source, copy_function=link_or_copy)
    return path


def link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system
        shutil.copy2(source, target)


def champion_name(root: Path) -> str:
    """The candidate that select chose in the checkout at `root`."""
    return read_json(root / "metrics/best.json")["winner"]


def in_checkout(root: Path, path: Path, before_the_floors: Path) -> Path:
    """`path` in the checkout at `root`, or where commits up to f209833 (before the floors) wrote it."""
    return root / path if (root / path).is_file() else root / before_the_floors


def champion_predictions(root: Path) -> tuple[str, dict]:
    """The champion's name and its test predictions {file: (actual, predicted)} in the checkout at `root`."""
    champion = champion_name(root)
    predictions = in_checkout(root, split_report(champion, "test").with_name("predictions.csv"),
                              Path("reports", champion, "predictions.csv"))
    with open(predictions, newline="") as f:
        return champion, {row["file"]: (row["actual"], row["predicted"]) for row in csv.DictReader(f)}


def against_baseline(baseline: Path) -> dict:
    """The two champions' test scores and the photos only one of them gets right (exact McNemar)."""
    from facemask.pipeline.evaluation import mcnemar

    scores = {}
    for side, root in (("baseline", baseline), ("now", Path())):
        champion, predictions = champion_predictions(root)
        test = read_json(in_checkout(root, split_report(champion, "test"), Path("metrics/candidates", f"{champion}.json")))
        scores[side] = {"champion": champion, "accuracy": test["accuracy"], "macro_f1": test["macro_f1"],
                        "right": {file: actual == predicted for file, (actual, predicted) in predictions.items()}}
    before, now = scores["baseline"].pop("right"), scores["now"].pop("right")
    if before.keys() != now.keys():
        sys.exit("the baseline's test split holds other photos than this checkout's: compare on the same split")
    wins, losses, p = mcnemar([before[f] for f in now], list(now.values()))
    return scores | {"only_now_right": wins, "only_baseline_right": losses, "p_value": round(float(p), 4)}


def side_by_side(results: dict) -> str:
    """Stage times of the baseline commit against this one, as a markdown table."""
    before, now = results["baseline"], results
    lines = [f"| stage | {before['commit'][:7]} s | now s | peak MiB before / now |", "|---|---|---|---|"]
    for name in dict.fromkeys([*before["stages"], *now["stages"]]):
        old, new = before["stages"].get(name), now["stages"].get(name)
        lines.append(f"| {name} | {old['seconds'] if old else '-'} | {new['seconds'] if new else '-'} | "
                     f"{old['peak_mib'] if old else '-'} / {new['peak_mib'] if new else '-'} |")
    old, new = before["full_repro_seconds"], now["full_repro_seconds"]
    lines.append(f"| **full `dvc repro`** | {old} | {new} ({new / old:.0%}) | "
                 f"{max(r['peak_mib'] for r in before['stages'].values())} / "
                 f"{max(r['peak_mib'] for r in now['stages'].values())} |")
    old, new = before["champion_train_change_seconds"], now["champion_train_change_seconds"]
    lines.append(f"| a change to the champion's training ({', '.join(new['stages'])}) | {old['seconds']} | "
                 f"{new['seconds']} | |")
    return "\n".join(lines)


def retrain(name: str, overrides: dict) -> dict:
    """Train candidate `name` again in this process, its train params changed by `overrides`, from its cached
    features (as the train stage does, op determinism on); score it on val and test. Logs to a throwaway
    MLflow store and writes nothing of the pipeline's."""
    import mlflow

    from facemask.core.model import predict_labels
    from facemask.core.params import TrainingRecipe, load_params
    from facemask.pipeline.checkpoint import Checkpoint
    from facemask.pipeline.evaluation import classification_metrics
    from facemask.pipeline.fitting import combined, member_seeds, train_members
    from facemask.pipeline.splits import split_images

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
    parser.add_argument("--baseline", help="an earlier commit to run the same full repro for first, side by side")
    parser.add_argument("--seeds", nargs="*", type=int, default=[],
                        help="train seeds the --compare candidate is trained with again, one model each (run-to-run spread)")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "pipeline.json"
    results = json.loads(out.read_text()) if args.skip_repro and out.is_file() else {}
    if args.baseline:
        commit = subprocess.run(["git", "rev-parse", args.baseline], capture_output=True, text=True,
                                check=True).stdout.strip()
        baseline = baseline_checkout(commit)
        results["baseline"] = {"commit": commit, **full_repro(baseline)}
        out.write_text(json.dumps(results, indent=2) + "\n")  # kept should this checkout's run fail
    if not args.skip_repro:
        results |= full_repro()
        out.write_text(json.dumps(results, indent=2) + "\n")
    if args.baseline:
        results["baseline"]["champions"] = against_baseline(baseline)
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
        results["candidates"][name] = {**read_json(split_report(name, "validation")),
                                       "test": read_json(split_report(name, "test")), "peak_mib": peak}
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
    if "baseline" in results:
        print(side_by_side(results))
    print(json.dumps({k: results[k] for k in results if k not in ("candidates", "stages")}, indent=2))


if __name__ == "__main__":
    main()
