"""Stage synthesize: data/split -> data/synthetic, training-only masked faces (facemask.pipeline.synthesize)."""


from facemask.core.files import write_csv
from facemask.core.params import load_params
from facemask.core.stage import run
from facemask.pipeline.splits import split_rows
from facemask.pipeline.synthesize import OUT_DIR, pick, pool_faces, synthesize, unmasked_training_faces


def main() -> None:
    params = load_params().synthesize
    pool = pool_faces(params) if params.uses_pool else []
    old_faces = pick(pool, params.old_from_pool, params.seed)
    unmasked = unmasked_training_faces(split_rows("train"), set(params.aligned_sources))
    young_faces = pick([path for label, path in unmasked if label == "without_mask_young"], params.young_from_train,
                       params.seed + 1)
    worn_wrong = pick(unmasked, params.worn_wrong_from_train, params.seed + 2)
    worn_wrong += [("without_mask_old", p) for p in pick(pool, params.worn_wrong_from_pool, params.seed + 3)]
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    rows = synthesize(old_faces, young_faces, OUT_DIR, params.seed, worn_wrong)
    write_csv(OUT_DIR / "synthetic.csv", rows, ["file", "label", "origin"])
    print(f"synthesize: {len(old_faces)} with_mask_old and {len(young_faces)} with_mask_young training faces, "
          f"{len(worn_wrong)} without_mask faces with a mask worn wrong")


if __name__ == "__main__":
    run(main, "synthesize")
