"""Grad-CAM: where the model looks to decide mask vs no mask, and young vs old.

The two decisions are scored as the log-probability of the predicted group (e.g. with_mask_* summed),
and Grad-CAM is taken at the backbone's last convolutional feature map (each backbone's, in an
ensemble; a seed-averaged model's maps are the mean of its members'). Expect the mask map on the nose
and mouth and the age map across the face.
`lower_half_share` (share of the map's mass in the lower half of the model's square input) sums
this up per class.
"""
from pathlib import Path

import mlflow
import numpy as np

from facemask.core import CLASSES
from facemask.core.files import read_json, write_json
from facemask.core.model import input_size, members
from facemask.core.resize import load_batch
from facemask.store.tracking import configure, recorded_run_id, start_run

MASK = np.array([c.startswith("with_mask") for c in CLASSES])
OLD = np.array([c.endswith("_old") for c in CLASSES])


def gradcam(model, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probabilities, mask maps, age maps) for a resized batch; maps are (n, size, size) in [0, 1].

    For a model from facemask.core.model.average(), the mean of its members' maps (each member's explaining
    its own prediction) and probabilities.
    """
    parts = [classifier_gradcam(member, batch) for member in members(model)]
    if len(parts) == 1:
        return parts[0]
    probabilities, mask_maps, age_maps = (np.mean(arrays, axis=0) for arrays in zip(*parts, strict=True))
    return probabilities, _unit_max(mask_maps), _unit_max(age_maps)


def _unit_max(maps: np.ndarray) -> np.ndarray:
    """Each map divided by its maximum (all-zero maps stay zero)."""
    return maps / np.maximum(maps.max(axis=(1, 2), keepdims=True), 1e-12)


def classifier_gradcam(model, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """gradcam() for one classifier (one backbone, or several feeding one head).

    Works for one backbone or an ensemble: each backbone's last feature map (the input of its pooling
    layer) gets Grad-CAM weights, and the maps are summed, as the logits are linear in pooled features.
    """
    from facemask.core.quiet_tf import keras, tf

    pools = [layer for layer in model.layers if isinstance(layer, keras.layers.GlobalAveragePooling2D)]
    grad_model = keras.Model(model.inputs, [[pool.input for pool in pools], model.output])
    with tf.GradientTape(persistent=True) as tape:
        feature_maps, probabilities = grad_model(tf.convert_to_tensor(batch, tf.float32), training=False)
        predicted = tf.argmax(probabilities, axis=1)
        scores = {}
        for name, group in (("mask", MASK), ("age", OLD)):
            in_group = tf.constant(group)
            same = tf.equal(tf.gather(in_group, predicted)[:, None], in_group[None, :])  # predicted side of the split
            scores[name] = tf.math.log(tf.reduce_sum(tf.where(same, probabilities, 0.0), axis=1) + 1e-7)
    size = batch.shape[1]
    maps = {}
    for name, score in scores.items():
        cam = 0.0
        for features, grads in zip(feature_maps, tape.gradient(score, feature_maps), strict=True):
            weighted = tf.reduce_sum(tf.reduce_mean(grads, axis=(1, 2), keepdims=True) * features, axis=-1)
            cam += tf.image.resize(weighted[..., None], (size, size))[..., 0]
        maps[name] = _unit_max(tf.nn.relu(cam).numpy())
    del tape
    return probabilities.numpy(), maps["mask"], maps["age"]


def lower_half_share(maps: np.ndarray) -> np.ndarray:
    """Share of each map's mass in its lower half (0.5 = spread evenly from top to bottom)."""
    half = maps.shape[1] // 2
    return maps[:, half:].sum(axis=(1, 2)) / np.maximum(maps.sum(axis=(1, 2)), 1e-12)


def figure(images, labels, probabilities, mask_maps, age_maps, title: str):
    """One row per image: the photo, the mask map and the age map (overlaid, jet colour map)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(images), 3, figsize=(7.5, 2.6 * len(images)), squeeze=False)
    rows = zip(images, labels, probabilities, mask_maps, age_maps, strict=True)
    for row, (image, label, prob, mask_map, age_map) in enumerate(rows):
        shown = np.clip(image, 0, 255).astype(np.uint8)
        predicted = CLASSES[int(prob.argmax())]
        panels = ((None, f"true {label}\npredicted {predicted} {prob.max():.0%}"),
                  (mask_map, "mask decision"), (age_map, "age decision"))
        for ax, (heat, text) in zip(axes[row], panels, strict=True):
            ax.imshow(shown)
            if heat is not None:
                ax.imshow(heat, cmap="jet", alpha=0.45, vmin=0, vmax=1)
            ax.set_title(text, fontsize=8)
            ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def explain(model, paths: list, y_true: np.ndarray, out_dir, per_class: int = 4, seed: int = 1337) -> dict:
    """Grad-CAM figures for up to `per_class` images of each class; returns the per-class summary."""
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    size = input_size(model)
    rng = np.random.default_rng(seed)
    summary = {}
    for index, label in enumerate(CLASSES):
        members = np.flatnonzero(np.asarray(y_true) == index)
        chosen = sorted(rng.permutation(members)[:per_class])
        if not chosen:
            continue
        batch = load_batch([paths[i] for i in chosen], size)
        probabilities, mask_maps, age_maps = gradcam(model, batch)
        fig = figure(batch, [label] * len(chosen), probabilities, mask_maps, age_maps, f"Grad-CAM: {label}")
        fig.savefig(out_dir / f"gradcam_{label}.jpg", dpi=80, pil_kwargs={"quality": 85})
        plt.close(fig)
        summary[label] = {
            "n": len(chosen),
            "files": [str(paths[i]) for i in chosen],
            "correct": int((probabilities.argmax(1) == index).sum()),
            "mask_map_lower_half_share": round(float(lower_half_share(mask_maps).mean()), 4),
            "age_map_lower_half_share": round(float(lower_half_share(age_maps).mean()), 4),
        }
    write_json(out_dir / "gradcam.json", summary)
    return summary


def summary_text(summary: dict, out_dir) -> str:
    """What explain prints: per class, how many maps were right and where the maps look."""
    lines = [f"explain: {label:20} {result['correct']}/{result['n']} correct, mask map lower-half share "
             f"{result['mask_map_lower_half_share']:.2f}, age map {result['age_map_lower_half_share']:.2f}"
             for label, result in summary.items()]
    lines.append(f"explain: Grad-CAM maps of {sum(r['n'] for r in summary.values())} test images in {out_dir}")
    return "\n".join(lines)


def log_to_mlflow(out_dir, model_path) -> None:
    """Add the figures and summary to the champion's training run (a new run if it is not in this store)."""
    configure()
    out_dir, model_dir = Path(out_dir), Path(model_path).parent
    champion = model_dir / "champion.json"
    candidate = read_json(champion)["candidate"] if champion.is_file() else model_dir.name
    with start_run(candidate, "explain", recorded_run_id(candidate), run_name=f"explain-{candidate}"):
        mlflow.log_artifacts(str(out_dir), "explain")
