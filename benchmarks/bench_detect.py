"""Detection benchmark: the face detectors on camera frames made from the dataset's photos.

    python benchmarks/bench_detect.py [--dataset ../shared/datasets/facemask-age] [--json FILE]

Face frames: dataset photos of all four classes, masks worn right (with_mask_*), no mask (without_mask_*) and
worn wrong (aligned unmasked faces given a mask below the nose or under the chin, facemask.pipeline.masks),
placed 1-3 to a 640x480 drawn indoor scene (facemask.core.scenes) at heights of 40-300 px, then the camera's light,
blur, sensor noise and JPEG quality. Non-face images: empty scenes, dataset photos cut into 8x8 tiles and
shuffled together, drawn hands and mask-only pictures in a scene. A face counts as found when a box's centre lies in its
placed photo (the photo is the face with some margin, so IoU with it is below 1 even for a perfect box).

Each detector runs twice: once with a low cut-off (0.3) to find the cut-off at which at most --max-fp of the
non-face images get a box, and once as shipped (make_detector's defaults), for the table. Prints markdown;
--json also writes every number.
"""
import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from facemask.core import CLASSES
from facemask.core.images import load_rgb
from facemask.core.scenes import FRAME_SIZE, camera, centre_in, free_boxes, hand, place, room
from facemask.pipeline.masks import WORN_WRONG, draw_mask
from facemask.use.detect import DETECTORS, BlazeFaceDetector, YuNetDetector, iou, make_detector

REPO = Path(__file__).resolve().parents[1]
HEIGHTS = (40, 60, 80, 120, 160, 220, 300)  # placed photo heights, px
GROUPS = ("masked", "unmasked", "worn_wrong")
NON_FACE = ("empty_scene", "shuffled_tiles", "hands", "mask_only")
LOW_CUTOFF = 0.3
# Settings measured beside the shipped detectors: the levers for recall and speed (zoom, input size, padding)
# and BlazeFace's other model.
VARIANTS = {"yunet, 25% padding": lambda score: YuNetDetector(min_score=score, pad=0.25),
            "yunet, no zoom (640 px)": lambda score: YuNetDetector(min_score=score, zoom=1.0, max_side=640),
            "yunet, 320 px input": lambda score: YuNetDetector(min_score=score, max_side=320),
            "blazeface full-range": lambda score: BlazeFaceDetector(min_score=score, model="full")}


def faces_by_group(dataset: Path, per_group: int, rng: np.random.Generator) -> dict[str, list[np.ndarray]]:
    """`per_group` photos per group; worn-wrong ones are aligned unmasked faces with a mask drawn wrong."""
    with open(dataset / "metadata.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    aligned = [r for r in rows if r["label"].startswith("without_mask") and r["source"] == "utkface_crop_part1"]
    others = [r for r in rows if r not in aligned]

    def pick(candidates: list[dict], count: int) -> list[np.ndarray]:
        return [load_rgb(dataset / candidates[i]["file"]) for i in rng.permutation(len(candidates))[:count]]

    masked = [r for r in rows if r["label"].startswith("with_mask")]
    per_class = {label: [r for r in masked if r["label"] == label] for label in CLASSES if label.startswith("with_")}
    unmasked = [r for r in others if r["label"].startswith("without_mask")] + aligned[: len(aligned) // 2]
    worn = pick(aligned[len(aligned) // 2:], per_group)
    return {"masked": pick(per_class["with_mask_old"], per_group // 2)
            + pick(per_class["with_mask_young"], per_group - per_group // 2),
            "unmasked": pick(unmasked, per_group),
            "worn_wrong": [draw_mask(face, rng, WORN_WRONG[i % 2]) for i, face in enumerate(worn)]}


def conditions(rng: np.random.Generator) -> dict:
    return {"light": float(rng.uniform(0.45, 1.35)), "blur": float(rng.choice([0.0, 0.0, 0.8, 1.6])),
            "noise": float(rng.uniform(0, 8)), "jpeg_quality": int(rng.integers(35, 96))}


def face_frames(groups: dict, rng: np.random.Generator) -> list[dict]:
    """Frames of 1-3 placed faces each: {"image", "faces": [{"box", "group", "height"}]}."""
    queue = [(group, photo) for group, photos in groups.items() for photo in photos]
    queue = [queue[i] for i in rng.permutation(len(queue))]
    frames, index = [], 0
    while index < len(queue):
        for count in range(int(rng.integers(1, 4)), 0, -1):
            chosen = queue[index:index + count]
            heights = [HEIGHTS[(index + k) % len(HEIGHTS)] for k in range(len(chosen))]
            shapes = [(max(8, round(photo.shape[1] * h / photo.shape[0])), h)
                      for (_, photo), h in zip(chosen, heights, strict=True)]
            boxes = free_boxes(rng, shapes)
            if boxes:
                break
        image = room(rng)
        for (_, photo), box in zip(chosen, boxes, strict=True):
            image = place(image, photo, box)
        frames.append({"image": camera(image, rng, **conditions(rng)),
                       "faces": [{"box": box, "group": group, "height": box[3]}
                                 for (group, _), box in zip(chosen, boxes, strict=True)]})
        index += len(chosen)
    return frames


def tiles_frame(photos: list[np.ndarray], rng: np.random.Generator, side: int = 160, cut: int = 8) -> np.ndarray:
    """A 640x480 frame of dataset photos (each resized to `side` px) cut into cut x cut tiles and shuffled
    together: their skin, hair and mask textures, no whole face. (At 4x4, a tile of a wide photo could hold
    a whole small face, which YuNet rightly boxed at up to 0.86.)"""
    width, height = FRAME_SIZE
    step = side // cut
    pieces = []
    for _ in range((width // side) * (height // side)):
        photo = np.asarray(Image.fromarray(photos[rng.integers(len(photos))]).resize((side, side)))
        pieces += [photo[r:r + step, c:c + step] for r in range(0, side, step) for c in range(0, side, step)]
    order = rng.permutation(len(pieces))
    columns = width // step
    rows = [np.concatenate([pieces[i] for i in order[r * columns:(r + 1) * columns]], axis=1)
            for r in range(height // step)]
    return np.concatenate(rows, axis=0)


def non_face_images(photos: list[np.ndarray], count: int, rng: np.random.Generator) -> list[dict]:
    """`count` images of each kind in NON_FACE, through the same camera."""
    images = []
    for kind in NON_FACE:
        for _ in range(count):
            image = tiles_frame(photos, rng) if kind == "shuffled_tiles" else room(rng)
            if kind in ("hands", "mask_only"):
                sides = [int(rng.integers(60, 260)) for _ in range(int(rng.integers(1, 3)))]
                for side, box in zip(sides, free_boxes(rng, [(s, s) for s in sides]) or [], strict=False):
                    blank = np.full((side, side, 3), image[box[1], box[0]], np.uint8)
                    patch = hand(rng, side) if kind == "hands" else draw_mask(blank, rng)
                    image = place(image, patch, box)
            images.append({"kind": kind, "image": camera(image, rng, **conditions(rng))})
    return images


def detections(detector, frames: list[dict], non_faces: list[dict]) -> dict:
    """Every box the detector gives (as (x, y, w, h, score)) on each face frame and non-face image, and ms a frame."""
    detector.detect(frames[0]["image"])  # loads the network
    started = time.perf_counter()
    on_frames = [[(*f.box, f.score) for f in detector.detect(frame["image"])] for frame in frames]
    ms = 1000 * (time.perf_counter() - started) / len(frames)
    on_non_faces = [[(*f.box, f.score) for f in detector.detect(item["image"])] for item in non_faces]
    return {"frames": on_frames, "non_faces": on_non_faces, "ms_per_frame": round(ms, 1)}


def summary(found: dict, frames: list[dict], non_faces: list[dict], cutoff: float) -> dict:
    """Recall per group and face height, boxes on non-face images and stray boxes per frame at `cutoff`."""
    hits, ious, stray = {}, [], 0
    for frame, boxes in zip(frames, found["frames"], strict=True):
        boxes = [b for b in boxes if b[4] >= cutoff]
        inside = {i: [b for b in boxes if centre_in(b, face["box"])] for i, face in enumerate(frame["faces"])}
        stray += sum(not any(centre_in(b, face["box"]) for face in frame["faces"]) for b in boxes)
        for i, face in enumerate(frame["faces"]):
            hits.setdefault(face["group"], {}).setdefault(face["height"], []).append(bool(inside[i]))
            if inside[i]:
                ious.append(float(iou(max(inside[i], key=lambda b: b[4])[:4], np.array([face["box"]], float))[0]))
    boxed = {kind: float(np.mean([any(b[4] >= cutoff for b in boxes) for item, boxes
                                  in zip(non_faces, found["non_faces"], strict=True) if item["kind"] == kind]))
             for kind in NON_FACE}
    recall = {group: {str(h): round(float(np.mean(v)), 3) for h, v in sorted(sizes.items())}
              for group, sizes in hits.items()}
    from_60 = {group: round(float(np.mean([x for h, v in sizes.items() if h >= 60 for x in v])), 3)
               for group, sizes in hits.items()}
    return {"cutoff": round(cutoff, 4), "recall_60px_and_more": from_60, "recall_by_height": recall,
            "non_face_with_box": round(float(np.mean(list(boxed.values()))), 3),
            "non_face_with_box_by_kind": {k: round(v, 3) for k, v in boxed.items()},
            "stray_boxes_per_frame": round(stray / len(frames), 3),
            "median_iou": round(float(np.median(ious)), 3) if ious else None}


def cutoff_for(found: dict, max_fp: float) -> float:
    """The lowest cut-off at which at most `max_fp` of the non-face images keep a box."""
    best = np.sort([max((b[4] for b in boxes), default=0.0) for boxes in found["non_faces"]])[::-1]
    allowed = int(np.floor(max_fp * len(best)))
    above = best[allowed] if allowed < len(best) else 0.0
    return float(np.nextafter(above, 1.0)) if above > 0 else LOW_CUTOFF


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=REPO.parent / "shared" / "datasets" / "facemask-age")
    parser.add_argument("--per-group", type=int, default=150, help="faces per group (masked, unmasked, worn wrong)")
    parser.add_argument("--non-face", type=int, default=50, help="non-face images of each kind")
    parser.add_argument("--max-fp", type=float, default=0.02, help="largest share of non-face images with a box")
    parser.add_argument("--only", nargs="*", help="measure these detectors only (names or variants)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if not (args.dataset / "metadata.csv").is_file():
        sys.exit(f"bench_detect: no dataset at {args.dataset} (metadata.csv); pass --dataset")
    rng = np.random.default_rng(0)
    groups = faces_by_group(args.dataset, args.per_group, rng)
    frames = face_frames(groups, rng)
    non_faces = non_face_images(groups["masked"][:20] + groups["unmasked"][:20], args.non_face, rng)
    print(f"bench_detect: {len(frames)} face frames ({sum(len(f['faces']) for f in frames)} faces), "
          f"{len(non_faces)} non-face images", file=sys.stderr, flush=True)
    report = {"cpus": os.cpu_count(), "faces_per_group": args.per_group, "face_frames": len(frames),
              "non_face_images": len(non_faces), "max_fp": args.max_fp, "detectors": {}}
    makers = {name: lambda score, name=name: DETECTORS[name](min_score=score) for name in DETECTORS} | VARIANTS
    for name, make in makers.items():
        if args.only and name not in args.only:
            continue
        low = detections(make(LOW_CUTOFF), frames, non_faces)
        cutoff = cutoff_for(low, args.max_fp)
        entry = {f"at_{args.max_fp:.0%}_non_face": summary(low, frames, non_faces, cutoff)}
        if name in DETECTORS:
            shipped = detections(make_detector(name), frames, non_faces)
            entry["as_shipped"] = summary(shipped, frames, non_faces, 0.0) | {"ms_per_frame": shipped["ms_per_frame"]}
        else:
            entry[f"at_{args.max_fp:.0%}_non_face"]["ms_per_frame"] = low["ms_per_frame"]
        report["detectors"][name] = entry
        print(f"  {name}: {json.dumps(entry)}", file=sys.stderr, flush=True)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


def print_report(report: dict) -> None:
    fp = f"at_{report['max_fp']:.0%}_non_face"
    print(f"{report['face_frames']} frames of 640x480 ({report['faces_per_group']} faces per group), "
          f"{report['non_face_images']} non-face images, {report['cpus']} CPUs\n")
    print("| detector | setting | cut-off | masked | unmasked | worn wrong | non-face with a box | stray boxes / frame "
          "| median IoU | ms / frame |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, entry in report["detectors"].items():
        for setting, r in entry.items():
            ms = r.get("ms_per_frame", entry.get("as_shipped", {}).get("ms_per_frame", ""))
            recall = r["recall_60px_and_more"]
            print(f"| {name} | {setting.replace('_', ' ')} | {r['cutoff'] if setting == fp else 'default'} | "
                  f"{recall['masked']:.1%} | {recall['unmasked']:.1%} | {recall['worn_wrong']:.1%} | "
                  f"{r['non_face_with_box']:.1%} | {r['stray_boxes_per_frame']} | {r['median_iou']} | {ms} |")
    print("\nRecall by placed height (px), as shipped or at the non-face limit:\n")
    print("| detector | group | " + " | ".join(str(h) for h in HEIGHTS) + " |")
    print("|---|---|" + "---:|" * len(HEIGHTS))
    for name, entry in report["detectors"].items():
        r = entry.get("as_shipped", entry[fp])
        for group in GROUPS:
            by_height = r["recall_by_height"][group]
            cells = " | ".join(f"{by_height[str(h)]:.0%}" if str(h) in by_height else "-" for h in HEIGHTS)
            print(f"| {name} | {group} | {cells} |")


if __name__ == "__main__":
    main()
