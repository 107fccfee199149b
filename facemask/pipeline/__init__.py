"""Floor 2: the library the DVC stages call (ingest, split, synthesize, augment, features, fitting, evaluation, selection)."""
