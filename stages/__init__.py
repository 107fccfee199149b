"""The DVC stages: each module is a main() that reads params.yaml and calls the library in facemask/."""
from facemask.core.tensorflow_logs import quiet_tensorflow

quiet_tensorflow()  # before any stage imports Keras
