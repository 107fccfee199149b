"""Cross-validate training recipes on the training split: ~1,800 held-out real photos to compare on,
where the val split has 207 (13 of them with_mask_old), too few to tell recipes a point apart.

    python benchmarks/crossval.py [--backbone MobileNetV2] [--folds 5] [--seeds 1337]
                                  [--recipe NAME '{"fine_tune_epochs": 4}' ...]

The training split's real photos are cut into group-aware folds stratified by class (scikit-learn's
StratifiedGroupKFold: a `group` never spans two folds). For each seed, fold and recipe, the backbone is
trained as the train stage trains one model (train_phases, its params from params.yaml changed by the
recipe; the first recipe, `pipeline`, changes nothing) on the augmented copies and synthetic faces of
the other folds' photos, with the val split for early stopping as in the pipeline. It then predicts
the held-out photos as they are, mirrored (flip test-time averaging: the mean of both), and degraded as
evaluate's slices degrade the test split (dark, noise, blur, jpeg20: facemask.pipeline.slices), so that the
drop from plain is measured on ~1,800 photos rather than the test split's 208.
The test split is never read. Each (recipe, seed, fold) is saved in .crossval/ as it finishes, under a
digest of its params, training images (their bytes), split and training code, so a killed run goes on
where it stopped and a change to any of them trains again. Writes benchmarks/results/crossval.json and
prints a table; each recipe and view is paired against `pipeline` as it is (exact McNemar test on the
photos one of the two gets right and the other wrong).
"""
import argparse
import gc
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from facemask.core.tensorflow_logs import quiet_tensorflow
from facemask.pipeline.degrade import DEGRADATIONS

RESULTS = Path("benchmarks/results")
CACHE = Path(".crossval")
VIEWS = ("plain", "flip", *DEGRADATIONS)


def fold_of_photos(folds: int, seed: int) -> tuple[list[dict], np.ndarray]:
    """The training split's rows and each one's fold (0..folds-1), group-aware and stratified by class."""
    from sklearn.model_selection import StratifiedGroupKFold

    from facemask.pipeline.splits import split_rows

    rows = split_rows("train")
    fold = np.zeros(len(rows), dtype=int)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (_, held_out) in enumerate(splitter.split(rows, [r["label"] for r in rows], [r["group"] for r in rows])):
        fold[held_out] = k
    return rows, fold


def fold_of_training_images(rows: list[dict], fold: np.ndarray) -> np.ndarray:
    """The fold of each augment.csv row's photo: an augmented copy's origin, or the training photo a
    synthetic face was drawn on; -1 for a synthetic face from the outside pool (trained on in every fold)."""
    from facemask.core.files import read_csv
    from facemask.pipeline.augment import SYNTHETIC_DIR
    from facemask.pipeline.splits import AUGMENTED_DIR, image_path

    by_path = {}
    for row, k in zip(rows, fold, strict=True):
        by_path |= {str(image_path(row)): k, row["file"]: k}
    drawn_on = {f"synthetic/{r['file']}": r["origin"] for r in read_csv(SYNTHETIC_DIR / "synthetic.csv")}
    return np.array([by_path.get(drawn_on.get(r["origin"], r["origin"]), -1)
                     for r in read_csv(AUGMENTED_DIR / "augment.csv")])


def held_out_views(paths: list, photos: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """The photos numbered `photos` (indices into `paths`) at `size`, decoded once: as they are ("plain"),
    and degraded as evaluate's slices degrade the test split, photo i with the slices' generator for
    number i (the same pixels in any fold)."""
    from facemask.core.images import load_rgb
    from facemask.core.resize import resize_batch
    from facemask.pipeline.slices import degraded_image

    originals = {i: load_rgb(paths[i]) for i in photos}
    return {"plain": resize_batch([originals[i] for i in photos], size)} | {
        kind: resize_batch([degraded_image(originals[i], kind, i) for i in photos], size) for kind in DEGRADATIONS}


def train_and_predict(backbone: str, params, images: tuple, keep: np.ndarray, held_out: dict[str, np.ndarray]) -> dict:
    """One model trained as train_phases trains it, on `images` = (train x, y, val x, y) and the cached
    features of the training images where `keep` is true; its probabilities for each view of the held-out
    photos (`held_out`: view -> batch, "plain" among them), and for the plain ones mirrored ("flip")."""
    import mlflow

    from facemask.pipeline.checkpoint import Checkpoint
    from facemask.pipeline.fitting import train_phases, untrained

    meta, features, model = untrained(backbone, params)
    if features:  # a head-first recipe: its cached features, of the fold's training images
        features = features | {"train_x": features["train_x"][keep], "train_y": features["train_y"][keep]}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        mlflow.set_tracking_uri(f"sqlite:///{scratch}/crossval.db")
        with mlflow.start_run():
            rows = train_phases(model, features, lambda: images, params,
                                Checkpoint(scratch, "crossval"), meta["weights"] != "none")
    return {view: model.predict(batch, verbose=0) for view, batch in held_out.items()} | {
        "flip": model.predict(held_out["plain"][:, :, ::-1], verbose=0), "epochs": len(rows),
        "seconds": time.perf_counter() - started}


def run_folds(backbone: str, recipes: dict, folds: int, seeds: list[int]) -> tuple[np.ndarray, list[dict], dict]:
    """Train and predict every (recipe, seed, fold) not in the cache yet; return (labels of the training
    photos, their rows, {(recipe, seed): {view: probabilities of every photo when held out}})."""
    import keras

    from facemask.core import CLASSES
    from facemask.core.files import read_json
    from facemask.core.params import TrainingRecipe, load_params
    from facemask.core.resize import ImageFiles
    from facemask.core.stage import stage_code
    from facemask.pipeline.checkpoint import fingerprint
    from facemask.pipeline.fitting import FEATURES_ROOT, fine_tune_data
    from facemask.pipeline.splits import AUGMENTED_DIR, SPLIT_DIR, image_path

    rows, fold = fold_of_photos(folds, seeds[0])
    paths = [image_path(r) for r in rows]
    labels = np.array([CLASSES.index(r["label"]) for r in rows])
    # The training images' own bytes: an augment or synthesize change that keeps augment.csv's file names
    # (a blur share, a level in facemask.pipeline.degrade) must train again.
    training_images = fingerprint({}, sorted(path for path in AUGMENTED_DIR.rglob("*") if path.is_file()))
    image_fold = fold_of_training_images(rows, fold)
    size = None
    results = {}
    for name, recipe in recipes.items():
        for seed in seeds:
            params = TrainingRecipe.model_validate(
                load_params().recipe(backbone).model_dump() | recipe | {"seeds": None, "seed": seed})
            # A fold's cache is valid only for these params, folds, views, data and training code.
            digest = fingerprint({"params": params.model_dump(), "folds": folds, "fold_seed": seeds[0], "views": VIEWS,
                                  "training_images": training_images},
                                 [SPLIT_DIR / "split.csv", FEATURES_ROOT / backbone / "meta.json", *stage_code("train")])
            probs = {view: np.zeros((len(rows), len(CLASSES))) for view in VIEWS}
            for k in range(folds):
                cached = CACHE / backbone / f"{name}_seed{seed}_fold{k}of{folds}_{digest[:12]}.npz"
                if not cached.is_file():
                    if size is None:
                        size = read_json(FEATURES_ROOT / backbone / "meta.json")["image_size"]
                        train_x, train_y, val_x, val_y = fine_tune_data(size)
                    keep, held_out = image_fold != k, np.flatnonzero(fold == k)
                    fold_images = (ImageFiles(train_x.paths[keep], size), train_y[keep], val_x, val_y)  # streamed
                    out = train_and_predict(backbone, params, fold_images, keep,
                                            held_out_views(paths, held_out, size))
                    keras.utils.clear_session(free_memory=True)  # each fold's model and graphs, or memory grows
                    gc.collect()
                    cached.parent.mkdir(parents=True, exist_ok=True)
                    np.savez(cached, **{view: out[view] for view in VIEWS}, index=held_out, seconds=out["seconds"])
                    print(f"crossval: {name} seed {seed} fold {k}: {out['seconds']:.0f}s, {out['epochs']} epochs",
                          flush=True)
                with np.load(cached) as saved:
                    for view in probs:
                        probs[view][saved["index"]] = saved[view]
            results[(name, seed)] = probs
    return labels, rows, results


def scores(labels: np.ndarray, rows: list[dict], probabilities: np.ndarray) -> dict:
    """Accuracy, macro-F1, per-class recall and per-source accuracy of one set of predictions."""
    from facemask.pipeline.evaluation import accuracy_by, classification_metrics

    predicted = probabilities.argmax(axis=1)
    metrics = classification_metrics(labels, predicted)
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
            "recall": {c: v["recall"] for c, v in metrics["per_class"].items()},
            "accuracy_by_source": {s: v["accuracy"] for s, v in
                                   accuracy_by([r["source"] for r in rows], labels, predicted).items()}}


def mcnemar(labels: np.ndarray, baseline: np.ndarray, other: np.ndarray) -> dict:
    """Photos only `other` gets right, only `baseline` gets right (predicted labels), and the exact two-sided
    p-value."""
    from facemask.pipeline.evaluation import mcnemar as paired

    wins, losses, p = paired(np.asarray(baseline) == labels, np.asarray(other) == labels)
    return {"only_this_right": wins, "only_pipeline_right": losses, "p_value": round(float(p), 4)}


def report(labels: np.ndarray, rows: list[dict], results: dict, seeds: list[int]) -> dict:
    """Scores per (recipe, view), with the seeds' probabilities averaged, paired against pipeline/plain,
    and each degraded view's accuracy drop from its recipe's plain; with several seeds, each seed's plain
    model on its own too (is the average worth its cost?)."""
    names = list(dict.fromkeys(name for name, _ in results))
    views = [view for view in VIEWS if view in next(iter(results.values()))]
    averaged = {f"{name}/{view}": np.mean([results[(name, seed)][view] for seed in seeds], axis=0)
                for name in names for view in views}
    if len(seeds) > 1:
        averaged |= {f"{name}/plain seed {seed}": results[(name, seed)]["plain"] for name in names for seed in seeds}
    baseline = averaged[f"{names[0]}/plain"].argmax(axis=1)
    summary = {key: scores(labels, rows, probs) | mcnemar(labels, baseline, probs.argmax(axis=1))
               | {"predicted": probs.argmax(axis=1).tolist()} for key, probs in averaged.items()}
    for key, row in summary.items():
        name, view = key.split("/")
        if view in DEGRADATIONS:
            row["drop"] = round(summary[f"{name}/plain"]["accuracy"] - row["accuracy"], 4)
    return summary


def paired_with(labels: np.ndarray, summary: dict, against: Path, folds: int, fold_seed: int,
                row: str = "pipeline/plain") -> None:
    """Pair every row of `summary` against `row` of another run (same photos and folds, other data: e.g.
    before a synthesize or augment change), adding `against` = its McNemar counts."""
    other = json.loads(against.read_text())
    if other["labels"] != labels.tolist() or (other["folds"], other["seeds"][0]) != (folds, fold_seed):
        raise SystemExit(f"{against}: other photos or folds than this run; run both on the same split and --folds")
    if row not in other["scores"]:
        raise SystemExit(f"{against} has no row {row!r}; it has {', '.join(other['scores'])}")
    for scored in summary.values():
        scored["against"] = mcnemar(labels, other["scores"][row]["predicted"], scored["predicted"])


def table(summary: dict, against: Path | None) -> str:
    extra = f" only this right / only {against.name}'s right (p) |" if against else ""
    lines = ["| recipe / view | accuracy (drop from plain) | macro-F1 | recall wm_old / wm_young / wo_old / wo_young "
             f"| worst source | only this right / only pipeline right (p) |{extra}",
             "|---|---|---|---|---|---|" + "---|" * bool(against)]
    for key, row in summary.items():
        worst = min(row["accuracy_by_source"].items(), key=lambda kv: kv[1])
        pairs = [row, row["against"]] if against else [row]
        drop = f" ({row['drop']:+.3f})" if "drop" in row else ""
        lines.append(f"| {key} | {row['accuracy']:.3f}{drop} | {row['macro_f1']:.3f} | "
                     f"{' / '.join(f'{v:.3f}' for v in row['recall'].values())} | {worst[0]} {worst[1]:.3f} | "
                     + " ".join(f"{p['only_this_right']} / {p['only_pipeline_right']} ({p['p_value']}) |" for p in pairs))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="MobileNetV2")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1337])
    parser.add_argument("--recipe", nargs=2, action="append", default=[], metavar=("NAME", "JSON"),
                        help="train params to change, e.g. fine_tune_epochs4 '{\"fine_tune_epochs\": 4}'")
    parser.add_argument("--out", type=Path, default=RESULTS / "crossval.json", help="where the results go")
    parser.add_argument("--against", type=Path, help="an earlier run's results (other synthesize/augment params) "
                        "to pair every row with")
    parser.add_argument("--against-row", default="pipeline/plain", help="which of its rows, e.g. 'pipeline/plain seed 1337'")
    args = parser.parse_args()
    quiet_tensorflow()
    recipes = {"pipeline": {}} | {name: json.loads(text) for name, text in args.recipe}
    labels, rows, results = run_folds(args.backbone, recipes, args.folds, args.seeds)
    summary = report(labels, rows, results, args.seeds)
    if args.against:
        paired_with(labels, summary, args.against, args.folds, args.seeds[0], args.against_row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(
        {"backbone": args.backbone, "folds": args.folds, "seeds": args.seeds, "photos": len(rows),
         "recipes": recipes, "labels": labels.tolist(), "scores": summary}))
    print(f"{args.backbone}, {args.folds}-fold cross-validation on {len(rows)} training photos, seeds {args.seeds}")
    print(table(summary, args.against))


if __name__ == "__main__":
    main()
