"""Floor 2: where runs and models are kept: MLflow tracking, the model registry, loading a --model."""
