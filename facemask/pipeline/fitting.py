"""Stage train@<candidate>: fit the head on cached features, optionally fine-tune the top layers.

Phase 1 trains dropout + softmax on the frozen backbone's cached features (seconds; epochs: 0 skips
it, so phase 2 starts from the untrained head, which validated better for MobileNetV2). Phase 2, when
fine_tune_epochs > 0, unfreezes the top `fine_tune_layers` backbone layers ("all" for every layer,
the only sensible choice without pretrained weights) and trains on the images at a low learning rate,
streamed from disk a batch at a time (memory stays flat as the data grows). Pretrained BatchNorm stays in
inference mode. With `consistency` > 0 each fine-tuning image is paired with a degraded copy of it and the
two are asked to agree (facemask/consistency.py). `train.distribute: mirrored` trains on every visible GPU
(facemask/distribute.py). With `seeds: [a, b, ...]` the candidate is that many models, trained alike but
for the seed, and the saved model averages their probabilities.
Writes models/candidates/<candidate>/{model.keras, mlflow.json}, metrics/candidates/<candidate>_val.json
and plots/<candidate>/history.csv; logs one MLflow run.

Resumable and deterministic: each epoch's batch order depends only on (seed, epoch), and after every
epoch the model, optimizer, early-stopping state, history and MLflow run id are checkpointed in
.checkpoints/<candidate>/seed_<seed>/ (outside models/, which DVC empties before a re-run). A killed run
goes on from its last epoch on the next `dvc repro` and ends exactly as an uninterrupted run would.
"""
import functools
import math
import time
from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
from sklearn.utils.class_weight import compute_class_weight

from facemask.core import CLASSES
from facemask.core.files import read_json
from facemask.core.model import average, head, load
from facemask.core.params import TrainingRecipe
from facemask.core.progress import bar
from facemask.core.quiet_tf import keras, tf
from facemask.core.resize import ImageFiles, load_batch
from facemask.core.stage import require
from facemask.pipeline.checkpoint import Checkpoint, fingerprint
from facemask.pipeline.consistency import ConsistencyTrainer, with_degraded_copies
from facemask.pipeline.distribute import KERAS_VALIDATION_BATCH, require_even_first_batches, training_strategy
from facemask.pipeline.splits import split_images, training_images

FEATURES_ROOT = Path("data/features")
CHECKPOINT_ROOT = Path(".checkpoints")
LOADERS = 2  # threads that decode training images ahead of the model (one per core here)




class BatchBar(keras.callbacks.Callback):
    """One bar per fit() over its training batches, with the running loss."""

    def __init__(self, desc: str, steps: int):
        super().__init__()
        self.desc, self.steps, self._bar = desc, steps, None

    def on_train_begin(self, logs=None):
        self._bar = bar(desc=self.desc, total=self.steps, unit="batch")

    def on_train_batch_end(self, batch, logs=None):
        self._bar.update(1)
        if logs and "loss" in logs:
            self._bar.set_postfix(loss=f"{float(logs['loss']):.3f}", refresh=False)

    def on_train_end(self, logs=None):
        self._bar.close()


class Batches(keras.utils.PyDataset):
    """(x, targets, sample weight) batches in an order that depends only on (seed, epoch): resumable.

    `x` is an array (cached features) or ImageFiles, streamed from disk: LOADERS threads decode the next
    batches while the model trains on this one, and batches arrive in order, so training is the same.
    """

    def __init__(self, x: np.ndarray | ImageFiles, targets: np.ndarray, weights: np.ndarray, batch_size: int, seed: int,
                 paired: bool = False):
        super().__init__(workers=LOADERS)
        self.x, self.targets, self.weights, self.batch_size, self.seed = x, targets, weights, batch_size, seed
        self.paired, self.epoch, self.order = paired, 0, np.arange(len(targets))

    def shuffle(self, epoch: int) -> None:
        self.epoch, self.order = epoch, np.random.default_rng([self.seed, epoch]).permutation(len(self.targets))

    def __len__(self) -> int:
        return math.ceil(len(self.targets) / self.batch_size)

    def __getitem__(self, i: int):
        rows = self.order[i * self.batch_size:(i + 1) * self.batch_size]
        x = self.x[rows]
        if self.paired:  # each image and a degraded copy of it, drawn for (seed, epoch, batch)
            x = with_degraded_copies(x, np.random.default_rng([self.seed, self.epoch, i]))
        return x, self.targets[rows], self.weights[rows]

    def feed(self, strategy: tf.distribute.Strategy) -> "Batches | tf.data.Dataset":
        """What fit() is given: these batches; over several devices the same batches in the same order as a
        tf.data pipeline. (There fit() first takes one batch from an iterator that it then drops, and a
        PyDataset's loader threads let that iterator's batches into the epoch: another order than one device
        sees, measured.)"""
        if strategy.num_replicas_in_sync == 1:
            return self
        specs = [tf.TensorSpec((None, *part.shape[1:]), part.dtype) for part in self[0]]

        def load(index):
            parts = tf.numpy_function(lambda i: self[int(i)], [index], [spec.dtype for spec in specs])
            return tuple(tf.ensure_shape(part, spec.shape) for part, spec in zip(parts, specs, strict=True))

        return (tf.data.Dataset.range(len(self)).map(load, num_parallel_calls=LOADERS, deterministic=True)
                .prefetch(LOADERS))

    def release(self) -> None:
        """Drop the arrays once training is over (fit() does). TensorFlow's from_generator registry keeps
        every dataset Keras's fit() was given alive, even after keras.utils.clear_session(): without this,
        cross-validation held one more copy of its training arrays per fold until it ran out of memory."""
        self.x = self.targets = self.weights = None


def class_weights(labels: np.ndarray, mode) -> dict | None:
    """'balanced' -> scikit-learn's inverse-frequency weights; none -> no weighting."""
    if str(mode).lower() == "none":
        return None
    classes = np.arange(len(CLASSES))
    weights = compute_class_weight("balanced", classes=classes, y=labels)
    return {int(c): float(w) for c, w in zip(classes, weights, strict=True)}


def soft_targets(params: TrainingRecipe) -> bool:
    """Whether training needs one-hot targets: label smoothing is on."""
    return params.label_smoothing > 0


def targets(labels: np.ndarray, params: TrainingRecipe) -> np.ndarray:
    """The labels as the loss takes them: class indices, or one-hot rows when soft_targets(params)."""
    return np.eye(len(CLASSES), dtype=np.float32)[labels] if soft_targets(params) else labels


def loss(params: TrainingRecipe):
    """Cross-entropy, smoothed by `label_smoothing` (built-in Keras losses only: safe-mode loading)."""
    if soft_targets(params):
        return keras.losses.CategoricalCrossentropy(label_smoothing=params.label_smoothing)
    return "sparse_categorical_crossentropy"


def batches(x: np.ndarray | ImageFiles, y: np.ndarray, params: TrainingRecipe, paired: bool = False) -> Batches:
    """Training batches with each sample weighted by its class weight (as Keras's class_weight does);
    `paired`: each image with a degraded copy of it (facemask.pipeline.consistency)."""
    weights = class_weights(y, params.class_weight)
    sample_weights = np.array([weights[int(label)] for label in y] if weights else np.ones(len(y)), np.float32)
    return Batches(x, targets(y, params), sample_weights, params.batch_size, params.seed, paired)


def head_model(model: keras.Model, params: TrainingRecipe) -> keras.Model:
    """The compiled dropout + softmax head of `model` (sharing its layers), for cached features."""
    classifier = head(model)
    classifier.compile(optimizer=keras.optimizers.Adam(params.learning_rate), loss=loss(params), metrics=["accuracy"])
    return classifier


def fine_tune_model(model: keras.Model, params: TrainingRecipe, pretrained: bool, steps: int) -> keras.Model:
    """`model` with the top layers of each backbone in it unfrozen, compiled at the fine-tuning learning rate
    (with `fine_tune_schedule: cosine`, decayed to 0 along a cosine over the phase's `steps` batches).
    With `consistency` > 0 what is compiled and returned is a ConsistencyTrainer around `model`.

    Pretrained BatchNorm layers stay frozen: in Keras 3 a non-trainable BatchNormalization runs in
    inference mode, whereas `training=False` at the backbone's call does not survive fit().
    """
    layers = params.fine_tune_layers
    for backbone in (layer for layer in model.layers if isinstance(layer, keras.Model)):
        backbone.trainable = True
        first = 0 if str(layers) == "all" else len(backbone.layers) - int(layers)
        for index, layer in enumerate(backbone.layers):  # each layer's own flag decides (Keras 3)
            frozen_bn = pretrained and isinstance(layer, keras.layers.BatchNormalization)
            layer.trainable = index >= first and not frozen_bn
    rate = params.fine_tune_learning_rate
    if params.fine_tune_schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(rate, decay_steps=steps)
    trainer = ConsistencyTrainer(model, params.consistency) if params.consistency > 0 else model
    trainer.compile(optimizer=keras.optimizers.Adam(rate), loss=loss(params), metrics=["accuracy"])
    return trainer


def fit(model: keras.Model, data: Batches, validation: tuple, epochs: int, patience: int, phase: str,
        checkpoint: Checkpoint, rows: list[dict]) -> list[dict]:
    """Train `model` one fit() per epoch, resuming from `checkpoint` if it holds this phase.

    Early stopping on val_loss with the best weights restored, as keras.callbacks.EarlyStopping does.
    After each epoch everything needed to go on is checkpointed. Returns `rows` + this phase's history;
    `data` is released (its arrays dropped) at the end.
    """
    saved = checkpoint.state if checkpoint.state.get("phase") == phase else None
    model.optimizer.build(model.trainable_variables)
    if saved:
        for variable, value in zip(model.variables + model.optimizer.variables,
                                   checkpoint.arrays("model") + checkpoint.arrays("optimizer"), strict=True):
            variable.assign(value)
        rows, best_weights = saved["rows"], checkpoint.arrays("best") or None
        epoch, wait, best, stopped = saved["epoch"], saved["wait"], saved["best"], saved["stopped"]
    else:
        rows, best_weights, epoch, wait, best, stopped = list(rows), None, 0, 0, math.inf, False
    require_even_first_batches(model.distribute_strategy, {
        "training": (len(data.targets), data.batch_size), "validation": (len(validation[1]), KERAS_VALIDATION_BATCH)})
    while epoch < epochs and not stopped:
        data.shuffle(epoch)
        progress = BatchBar(f"{checkpoint.path.parent.parent.name} {checkpoint.path.parent.name} {phase} "
                            f"epoch {epoch + 1}/{epochs}", len(data))
        logs = model.fit(data.feed(model.distribute_strategy), validation_data=validation, initial_epoch=epoch,
                         epochs=epoch + 1, shuffle=False, verbose=0, callbacks=[progress]).history
        logs = {k: float(v[-1]) for k, v in logs.items()}
        rows.append({"epoch": len(rows) + 1, "phase": phase, **{k: round(v, 5) for k, v in logs.items()}})
        mlflow.log_metrics(logs, step=len(rows))
        wait += 1
        if logs["val_loss"] < best:
            best, best_weights, wait = logs["val_loss"], model.get_weights(), 0
        elif best_weights is None:  # a first epoch without a comparable val_loss (NaN) still counts
            best_weights = model.get_weights()
        stopped, epoch = wait >= patience, epoch + 1
        checkpoint.save({"phase": phase, "epoch": epoch, "wait": wait, "best": best, "stopped": stopped,
                         "rows": rows, "run_id": checkpoint.state.get("run_id")},
                        model=[v.numpy() for v in model.variables],
                        optimizer=[v.numpy() for v in model.optimizer.variables], best=best_weights or [])
    if best_weights is not None:
        model.set_weights(best_weights)
    data.release()
    return rows


@functools.cache
def fine_tune_data(image_size: int) -> tuple:
    """(train images, train labels, val images, val labels) at `image_size`: the training images streamed
    from disk (ImageFiles), the validation images decoded once per process."""
    train_paths, train_y = training_images()
    val_paths, val_y = split_images("val")
    return ImageFiles(train_paths, image_size), train_y, load_batch(val_paths, image_size, desc="val images"), val_y


def train_phases(model: keras.Model, features: dict, images: Callable[[], tuple], params: TrainingRecipe,
                 checkpoint: Checkpoint, pretrained: bool, rows: list | None = None) -> list:
    """Phase 1 on the cached features (skipped when epochs is 0 or the checkpoint is already in phase 2),
    then phase 2 on images() = (train images, labels, val images, labels) when fine_tune_epochs > 0;
    returns `rows` + the history rows of both."""
    rows = list(rows or [])
    if checkpoint.state.get("phase") != "fine_tune" and params.epochs > 0:
        rows = fit(head_model(model, params), batches(features["train_x"], features["train_y"], params),
                   (features["val_x"], targets(features["val_y"], params)), params.epochs, params.patience, "head",
                   checkpoint, rows)
    if params.fine_tune_epochs > 0:
        train_x, train_y, val_x, val_y = images()
        data, epochs = batches(train_x, train_y, params, paired=params.consistency > 0), params.fine_tune_epochs
        rows = fit(fine_tune_model(model, params, pretrained, steps=len(data) * epochs), data,
                   (val_x, targets(val_y, params)), epochs, params.patience, "fine_tune", checkpoint, rows)
    return rows


def member_seeds(params: TrainingRecipe) -> list[int]:
    """The seeds of the models a candidate is made of: its `seeds`, else train.seed (one model)."""
    return list(params.seeds or [params.seed])


def train_members(candidate: str, params: TrainingRecipe,
                  checkpoints: dict[int, Checkpoint]) -> tuple[dict, dict, list, dict]:
    """Train one model per seed, each resumed from (or, once done, restored from) checkpoints[seed];
    returns (feature meta, {seed: model}, history rows of all, numbered on across members, {seed: training
    seconds}, the seconds of a resumed member counted from its resume)."""
    models, rows, seconds = {}, [], {}
    strategy = training_strategy(params.distribute)
    for seed in member_seeds(params):
        member_params, checkpoint = params.model_copy(update={"seed": seed}), checkpoints[seed]
        with strategy.scope():  # the model and its optimizer are made on the strategy's devices
            meta, features, model = untrained(candidate, member_params)
            if checkpoint.state.get("phase") == "done":
                model.set_weights(checkpoint.arrays("model"))
            else:
                started, before = time.perf_counter(), len(rows)
                rows = train_phases(model, features, functools.partial(fine_tune_data, meta["image_size"]),
                                    member_params, checkpoint, meta["weights"] != "none", rows)
                rows[before:] = [{"epoch": row["epoch"], "seed": seed, **row} for row in rows[before:]]
                checkpoint.save({**checkpoint.state, "phase": "done", "rows": rows,
                                 "seconds": time.perf_counter() - started}, model=model.get_weights())
        models[seed], rows, seconds[seed] = model, checkpoint.state["rows"], checkpoint.state["seconds"]
    return meta, models, rows, seconds


def combined(candidate: str, models: dict[int, keras.Model]) -> keras.Model:
    """The one model of a candidate: its only model, or the average of its seeds' models."""
    if len(models) == 1:
        return next(iter(models.values()))
    return average({f"seed_{seed}": model for seed, model in models.items()}, name=f"facemask_{candidate}")


def untrained(candidate: str, params: TrainingRecipe) -> tuple[dict, dict, keras.Model]:
    """Seed, then load `candidate`'s feature cache and untrained model: (meta, features, model).
    Seeding before loading fixes the dropout's random stream, so the same params give the same weights."""
    keras.utils.set_random_seed(params.seed)
    tf.config.experimental.enable_op_determinism()
    feature_dir = FEATURES_ROOT / candidate
    meta = read_json(require(feature_dir / "meta.json", f"features@{candidate}"))
    cache = feature_dir / "features.npz"  # none for a candidate that only fine-tunes (epochs: 0)
    features = dict(np.load(cache)) if cache.is_file() else {}
    model = load(feature_dir / "base.keras")
    model.get_layer("dropout").rate = params.dropout
    return meta, features, model


def checkpoints_for(candidate: str, params: TrainingRecipe, input_files: list, code: list) -> dict[int, Checkpoint]:
    """One checkpoint per member seed, valid only for these params, inputs and code files."""
    return {seed: Checkpoint(CHECKPOINT_ROOT / candidate / f"seed_{seed}", fingerprint(
                {"params": params.model_dump(), "seed": seed, "keras": keras.__version__}, [*input_files, *code]))
            for seed in member_seeds(params)}
