"""How far the pipeline's inference paths run from the model's own speed on this machine.

    python benchmarks/bench_inference.py [--candidate Xception] [--images 768]

For one candidate's untrained model (data/features/<candidate>/base.keras, as features@ builds it), three
numbers in images per second, each after a warm-up that builds the graph:
- `limit`: the feature extractor on images already decoded in memory, predicted in the same chunks of
  stages.features.CHUNK: no input pipeline at all;
- `extract`: stages.features.extract on the training image files, as features@ computes its cache
  (decode a chunk of files, predict it, and so on);
- `decode`: decoding and resizing the same files alone (facemask.core.resize.load_batch).
Writes benchmarks/results/inference.json and prints a markdown table.
"""
import argparse
import json
import time
from pathlib import Path

from facemask.core.tensorflow_logs import quiet_tensorflow

RESULTS = Path("benchmarks/results")


def per_second(count: int, run) -> float:
    started = time.perf_counter()
    run()
    return round(count / (time.perf_counter() - started), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidate", default="Xception")
    parser.add_argument("--images", type=int, default=768, help="training images to time, from the start of the list")
    args = parser.parse_args()
    quiet_tensorflow()

    from facemask.core.files import read_json
    from facemask.core.model import feature_extractor, load
    from facemask.core.params import load_params
    from facemask.core.resize import load_batch
    from facemask.pipeline.features import CHUNK, OUT_ROOT, extract
    from facemask.pipeline.splits import training_images

    size = read_json(OUT_ROOT / args.candidate / "meta.json")["image_size"]
    batch_size = load_params().features.batch_size
    extractor = feature_extractor(load(OUT_ROOT / args.candidate / "base.keras"))
    paths = training_images()[0][:args.images]
    chunks = [load_batch(paths[i:i + CHUNK], size) for i in range(0, len(paths), CHUNK)]
    extractor.predict(chunks[0], batch_size=batch_size, verbose=0)  # warm-up: builds the graph
    speeds = {"extract": per_second(len(paths), lambda: extract(extractor, paths, size, batch_size, "extract")),
              "limit": per_second(len(paths), lambda: [extractor.predict(chunk, batch_size=batch_size, verbose=0)
                                                       for chunk in chunks]),
              "decode": per_second(len(paths), lambda: load_batch(paths, size))}
    result = {"candidate": args.candidate, "image_size": size, "images": len(paths), "batch_size": batch_size,
              "images_per_second": speeds, "extract_share_of_limit": round(speeds["extract"] / speeds["limit"], 3)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "inference.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"| {args.candidate} at {size} px, {len(paths)} images | images/s |\n|---|---|")
    for name, value in speeds.items():
        print(f"| {name} | {value} |")
    print(f"extract runs at {result['extract_share_of_limit']:.0%} of the model's limit")


if __name__ == "__main__":
    main()
