"""Stage train@<candidate>: models/candidates/<candidate>, its validation metrics, per-photo validation predictions
and history, one MLflow run (facemask.pipeline.fitting does the training; this main() records it)."""
import shutil
from pathlib import Path

import mlflow
import numpy as np

from facemask.core import CLASSES
from facemask.core.files import read_json, write_csv, write_json
from facemask.core.model import predict_labels
from facemask.core.outputs import headline, model_dir, split_report, val_metrics, val_predictions
from facemask.core.params import load_params
from facemask.core.resize import load_batch
from facemask.core.stage import candidate_arg, require, run, stage_code
from facemask.pipeline.evaluation import classification_metrics, member_scores, prediction_rows, reframed_scores
from facemask.pipeline.fitting import CHECKPOINT_ROOT, FEATURES_ROOT, checkpoints_for, combined, train_members
from facemask.pipeline.splits import image_path, split_rows
from facemask.store.tracking import configure, log_split_dataset, start_run
from facemask.use.pyfunc import log_model


def main() -> None:
    candidate = candidate_arg("train")
    params = load_params().recipe(candidate)
    configure()  # an unreachable tracking server fails here, before any training
    feature_dir = FEATURES_ROOT / candidate
    meta = read_json(require(feature_dir / "meta.json", f"features@{candidate}"))
    inputs = [path for path in (feature_dir / "features.npz", feature_dir / "base.keras") if path.is_file()]
    checkpoints = checkpoints_for(candidate, params, inputs, stage_code("train"))
    for seed, checkpoint in checkpoints.items():
        if checkpoint.state.get("phase") == "done":
            print(f"train@{candidate}: seed {seed}: trained before the interruption; restored from {checkpoint.path}")
        elif checkpoint.state:
            print(f"train@{candidate}: seed {seed}: resuming after {checkpoint.state['phase']} epoch "
                  f"{checkpoint.state['epoch']} from {checkpoint.path}")
        elif checkpoint.unusable:
            print(f"train@{candidate}: {checkpoint.path} is from other params or inputs (or unreadable); starting over")
    run_id = next((c.state["run_id"] for c in checkpoints.values() if c.state.get("run_id")), None)
    out_dir = model_dir(candidate)
    out_dir.mkdir(parents=True, exist_ok=True)
    with start_run(candidate, "train", run_id) as active:
        if active.info.run_id != run_id:
            mlflow.log_params({**{f"features.{k}": v for k, v in meta.items()}, **params.model_dump()})
            log_split_dataset()
        for checkpoint in checkpoints.values():
            checkpoint.state["run_id"] = active.info.run_id
        _, models, rows, seconds = train_members(candidate, params, checkpoints)
        train_seconds = sum(seconds.values())
        model = combined(candidate, models)
        val_rows = split_rows("val")
        val_paths, val_y = [image_path(r) for r in val_rows], np.array([CLASSES.index(r["label"]) for r in val_rows])
        val_x = load_batch(val_paths, meta["image_size"])  # decoded once for the model and its members
        probabilities = model.predict(val_x, verbose=0)
        val = classification_metrics(val_y, probabilities.argmax(axis=1))
        val["reframed"] = reframed_scores(val_y, lambda view: predict_labels(model, val_paths, view=view))
        if len(models) > 1:  # how far apart the averaged models are on their own
            val["members"] = member_scores(val_y, {f"seed_{seed}": member.predict(val_x, verbose=0).argmax(axis=1)
                                                   for seed, member in models.items()})
        mlflow.log_metrics({"val_accuracy_final": val["accuracy"], "val_macro_f1": val["macro_f1"],
                            "val_reframed_macro_f1": val["reframed"]["mean_macro_f1"],
                            "train_seconds": train_seconds})
        write_csv(val_predictions(candidate), prediction_rows(val_rows, probabilities))
        mlflow.log_artifact(str(val_predictions(candidate)), "validation")  # what the CI gate compares with
        model.save(out_dir / "model.keras")
        write_json(out_dir / "mlflow.json", {"run_id": active.info.run_id, "model_uri": log_model(out_dir / "model.keras")})
    write_json(val_metrics(candidate), headline("val", val))
    write_json(split_report(candidate, "validation"), {
        "candidate": candidate, "weights": meta["weights"], "image_size": meta["image_size"], "seeds": list(models),
        "train_seconds": round(train_seconds, 1), "feature_seconds": meta["seconds"],
        "member_train_seconds": {f"seed_{seed}": round(s, 1) for seed, s in seconds.items()}, "val": val,
    })
    write_csv(Path("plots") / candidate / "history.csv", rows)
    shutil.rmtree(CHECKPOINT_ROOT / candidate, ignore_errors=True)
    print(f"train@{candidate}: val accuracy {val['accuracy']:.4f}, macro-F1 {val['macro_f1']:.4f} "
          f"({train_seconds:.0f}s, {len(rows)} epochs, {len(models)} model(s))")


if __name__ == "__main__":
    run(main, "train")
