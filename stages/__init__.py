"""The pipeline's stages (dvc.yaml); importing facemask first keeps TensorFlow's start-up lines quiet."""
import facemask  # noqa: F401
