"""Stage train@<backbone>: fit the head on cached features, optionally fine-tune the top layers.

Phase 1 trains dropout + softmax on the frozen backbone's cached features (seconds). Phase 2, when
fine_tune_epochs > 0, unfreezes the top `fine_tune_layers` backbone layers ("all" for every layer,
the only sensible choice without pretrained weights) and trains on the images at a low learning rate.
Pretrained BatchNorm stays in inference mode. Writes models/<backbone>/{model.keras, mlflow.json},
metrics/<backbone>_val.json and plots/<backbone>/history.csv; logs one MLflow run.
"""
import sys
import time
from pathlib import Path

import keras
import mlflow
import numpy as np
from sklearn.utils.class_weight import compute_class_weight

from facemask import CLASSES
from facemask.evaluation import classification_metrics
from facemask.files import read_json, write_csv, write_json
from facemask.images import load_batch
from facemask.model import backbone_of, head, load
from facemask.params import backbone_section, load_section
from facemask.stage import run
from facemask.tracking import configure, run_tags
from stages.features import training_images, split_images

FEATURES_ROOT = Path("data/features")
PIP_REQUIREMENTS = ["tensorflow-cpu==2.21.0", "keras==3.15.1", "numpy==2.4.6"]


def class_weights(labels: np.ndarray, mode) -> dict | None:
    """'balanced' -> scikit-learn's inverse-frequency weights; none -> no weighting."""
    if str(mode).lower() == "none":
        return None
    classes = np.arange(len(CLASSES))
    weights = compute_class_weight("balanced", classes=classes, y=labels)
    return {int(c): float(w) for c, w in zip(classes, weights)}


def fit_head(model: keras.Model, features: dict, params: dict, callbacks: list) -> dict:
    """Train the dropout + softmax head of `model` on cached features; return the Keras history."""
    model.get_layer("dropout").rate = float(params.get("dropout", 0.2))
    classifier = head(model)
    classifier.compile(optimizer=keras.optimizers.Adam(float(params.get("learning_rate", 1e-3))),
                       loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = classifier.fit(
        features["train_x"], features["train_y"], validation_data=(features["val_x"], features["val_y"]),
        epochs=int(params.get("epochs", 30)), batch_size=int(params.get("batch_size", 32)),
        class_weight=class_weights(features["train_y"], params.get("class_weight", "balanced")),
        callbacks=callbacks + [_early_stopping(params)], verbose=0, shuffle=True,
    )
    return history.history


def fine_tune(model: keras.Model, images: dict, params: dict, callbacks: list) -> dict:
    """Unfreeze the top backbone layers and train the whole model on images; return the history."""
    backbone = backbone_of(model)
    layers = params.get("fine_tune_layers", 0)
    backbone.trainable = True
    if str(layers) != "all":
        for layer in backbone.layers[: len(backbone.layers) - int(layers)]:
            layer.trainable = False
    model.compile(optimizer=keras.optimizers.Adam(float(params.get("fine_tune_learning_rate", 1e-5))),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(
        images["train_x"], images["train_y"], validation_data=(images["val_x"], images["val_y"]),
        epochs=int(params["fine_tune_epochs"]), batch_size=int(params.get("batch_size", 32)),
        class_weight=class_weights(images["train_y"], params.get("class_weight", "balanced")),
        callbacks=callbacks + [_early_stopping(params)], verbose=0, shuffle=True,
    )
    return history.history


def _early_stopping(params: dict) -> keras.callbacks.EarlyStopping:
    return keras.callbacks.EarlyStopping(monitor="val_loss", patience=int(params.get("patience", 5)),
                                         restore_best_weights=True)


def history_rows(history: dict, phase: str, first_epoch: int) -> list[dict]:
    return [{"epoch": first_epoch + i, "phase": phase, **{k: round(float(v[i]), 5) for k, v in history.items()}}
            for i in range(len(history.get("loss", [])))]


def predict_labels(model: keras.Model, paths: list, batch_size: int = 32) -> np.ndarray:
    """Top-1 class index for each image file, through the full saved-model path."""
    size = model.get_layer("resize").height
    return model.predict(load_batch(paths, size), batch_size=batch_size, verbose=0).argmax(axis=1)


def main() -> None:
    backbone = sys.argv[1]
    section = load_section("train")
    params = {k: v for k, v in section.items() if k != "backbones"} | backbone_section(section, backbone, "train")
    keras.utils.set_random_seed(int(params.get("seed", 1337)))
    feature_dir = FEATURES_ROOT / backbone
    meta = read_json(feature_dir / "meta.json")
    features = dict(np.load(feature_dir / "features.npz"))
    model = load(feature_dir / "base.keras")
    out_dir = Path("models") / backbone
    out_dir.mkdir(parents=True, exist_ok=True)
    configure()
    with mlflow.start_run(run_name=backbone, tags=run_tags(backbone, "train")) as active:
        mlflow.log_params({**{f"features.{k}": v for k, v in meta.items()}, **params})
        callbacks = [mlflow.keras.MlflowCallback(log_every_epoch=True, log_every_n_steps=None)]
        started = time.perf_counter()
        rows = history_rows(fit_head(model, features, params, callbacks), "head", 1)
        if int(params.get("fine_tune_epochs", 0)) > 0:
            train_paths, train_y = training_images()
            val_paths, val_y = split_images("val")
            size = meta["image_size"]
            images = {"train_x": load_batch(train_paths, size), "train_y": train_y,
                      "val_x": load_batch(val_paths, size), "val_y": val_y}
            rows += history_rows(fine_tune(model, images, params, callbacks), "fine_tune", len(rows) + 1)
        train_seconds = time.perf_counter() - started
        val_paths, val_y = split_images("val")
        val = classification_metrics(val_y, predict_labels(model, val_paths))
        mlflow.log_metrics({"val_accuracy_final": val["accuracy"], "val_macro_f1": val["macro_f1"],
                            "train_seconds": train_seconds})
        model.save(out_dir / "model.keras")
        info = mlflow.keras.log_model(model, name="model", pip_requirements=PIP_REQUIREMENTS)
        write_json(out_dir / "mlflow.json", {"run_id": active.info.run_id, "model_uri": info.model_uri})
    write_json(Path("metrics") / f"{backbone}_val.json", {
        "backbone": backbone, "weights": meta["weights"], "image_size": meta["image_size"],
        "train_seconds": round(train_seconds, 1), "feature_seconds": meta["seconds"], "val": val,
    })
    write_csv(Path("plots") / backbone / "history.csv", rows)
    print(f"train@{backbone}: val accuracy {val['accuracy']:.4f}, macro-F1 {val['macro_f1']:.4f} "
          f"({train_seconds:.0f}s, {len(rows)} epochs)")


if __name__ == "__main__":
    run(main, "train")
