"""Peak memory and speed of fine-tuning as the training set grows, and how far training is from its limit.

    python benchmarks/bench_training_memory.py [--candidate MobileNetV2] [--scales 1 4] [--steps 60] [--levers xla bf16]

For each scale, one process fine-tunes the candidate as train@ does (its recipe, from data/features/ and
data/augmented/) on the training images listed `scale` times over, streamed from disk (ImageFiles; a list
repeated stands in for `augment.copies: 4`, at the same decode cost per image), for --steps batches after
a warm-up that builds the graph. A last process trains on one batch held in memory, with no input pipeline
at all: the synthetic-input limit of the model on this machine. Each --levers one trains at 1x as the first
did, changed one way: `xla` compiles the training step with XLA (jit_compile=True; Keras leaves it off on
CPUs and under op determinism), `bf16` computes in bfloat16 (Keras's mixed_bfloat16 policy; worth it only
on a CPU with AVX512-BF16 or AMX, and the model rebuilt so its layers take the policy). Each process reports its peak RSS
(ru_maxrss) and the median seconds per batch; an epoch's time is that median times the epoch's batches.
The old route held the training set in memory as float32: its size is computed, not run (at 4x it would
not fit in 24 GiB). Writes benchmarks/results/training_memory.json and prints a markdown table.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from facemask.core.tensorflow_logs import quiet_tensorflow

RESULTS = Path("benchmarks/results")
WARM_UP = 5  # batches: the first builds the graph


def measure(candidate: str, scale: int, steps: int, lever: str) -> dict:
    """Run in a fresh process: fine-tune `candidate` for WARM_UP + steps batches, with `lever` (none, xla, bf16);
    scale 0 means one batch held in memory (no input pipeline)."""
    import resource
    import time

    import keras
    import numpy as np
    import tensorflow as tf

    from facemask.core.backbones import resolve_weights
    from facemask.core.model import build_ensemble
    from facemask.core.params import load_params
    from facemask.core.resize import ImageFiles
    from facemask.pipeline.fitting import batches, fine_tune_model, untrained
    from facemask.pipeline.splits import training_images

    settings = load_params()
    params = settings.recipe(candidate).model_copy(update={"seeds": None})
    if lever == "bf16":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    meta, _, model = untrained(candidate, params)
    if lever == "bf16":  # a loaded model keeps its saved float32 policy: build it anew under the global one
        members = {name: resolve_weights(name, meta["weights"], settings.features.weights_dir) for name in meta["members"]}
        model = build_ensemble(members, meta["image_size"], params.dropout)
    paths, labels = training_images()
    paths, labels = paths * max(scale, 1), np.tile(labels, max(scale, 1))
    data = batches(ImageFiles(paths, meta["image_size"]), labels, params)
    if scale == 0:  # one batch, in memory, again and again: no decoding, no Python between batches
        data = tf.data.Dataset.from_tensors(data[0]).repeat()
    model = fine_tune_model(model, params, meta["weights"] != "none", steps=WARM_UP + steps)
    if lever == "xla":
        model.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"], jit_compile=True)
    ends = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            ends.append(time.perf_counter())

    started = time.perf_counter()
    model.fit(data, epochs=1, steps_per_epoch=WARM_UP + steps, verbose=0, callbacks=[Clock()])
    per_batch = float(np.median(np.diff(ends[WARM_UP - 1:])))
    epoch_batches = -(-len(paths) // params.batch_size)
    return {"scale": scale, "lever": lever, "input": "one batch in memory" if scale == 0 else "streamed from disk",
            "images": len(paths) if scale else params.batch_size, "batch_size": params.batch_size,
            "seconds_per_batch": round(per_batch, 3), "images_per_second": round(params.batch_size / per_batch, 1),
            "epoch_seconds": round(per_batch * epoch_batches, 1) if scale else None,
            "first_batch_seconds": round(ends[0] - started, 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "in_memory_float32_mib": round(len(paths) * meta["image_size"] ** 2 * 3 * 4 / 2**20) if scale else None}


def table(rows: list[dict]) -> str:
    lines = ["| training images | input | lever | peak RSS MiB | s per batch | img/s (share of the limit) | epoch s "
             "| the old route's float32 array, MiB |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        images = f"{row['images']} ({row['scale']}x)" if row["scale"] else "-"
        lines.append(f"| {images} | {row['input']} | {row['lever']} | {row['peak_rss_mib']} | {row['seconds_per_batch']} | "
                     f"{row['images_per_second']} ({row['share_of_limit']:.0%}) | {row['epoch_seconds'] or '-'} | "
                     f"{row['in_memory_float32_mib'] or '-'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidate", default="MobileNetV2")
    parser.add_argument("--scales", nargs="*", type=int, default=[1, 4])
    parser.add_argument("--steps", type=int, default=60, help="batches timed after the warm-up")
    parser.add_argument("--levers", nargs="*", default=["xla", "bf16"], choices=["xla", "bf16"])
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # internal: SCALE LEVER, measured in this process
    args = parser.parse_args()
    quiet_tensorflow()
    if args.one is not None:
        print(json.dumps(measure(args.candidate, int(args.one[0]), args.steps, args.one[1])))
        return
    rows = []
    for scale, lever in [*((scale, "none") for scale in args.scales), (0, "none"), *((1, lever) for lever in args.levers)]:
        result = subprocess.run([sys.executable, __file__, "--candidate", args.candidate, "--steps", str(args.steps),
                                 "--one", str(scale), lever], capture_output=True, text=True)
        if result.returncode:
            sys.exit(f"scale {scale}, lever {lever} failed:\n{result.stderr[-3000:]}")
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    limit = next(row for row in rows if row["scale"] == 0)["images_per_second"]
    for row in rows:
        row["share_of_limit"] = round(row["images_per_second"] / limit, 3)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "training_memory.json").write_text(json.dumps(
        {"candidate": args.candidate, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
         "rows": rows}, indent=2) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
