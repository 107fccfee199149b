"""What runs inside each worker process: its own detector and TFLite interpreter, one image per job.

`start` is the pool's initializer (once per process); `predict` is a job. Both import TensorFlow (the
interpreter, and the model's resize in facemask.core.resize) only here, in the workers.
"""
import os
import time

_predictor = None
_max_pixels = 0


def start(model_file: str, detector, whole_image: bool, max_pixels: int) -> None:
    """Load the TFLite model and the detector (a name of DETECTORS, or a detector object) with one thread
    each (the pool is the parallelism), and warm both up, so that the first request does not pay for it."""
    global _predictor, _max_pixels
    from facemask.core.tensorflow_logs import quiet_tensorflow

    quiet_tensorflow()
    import cv2
    import numpy as np

    from facemask.core.quiet_tf import tf
    from facemask.use.detect import make_detector
    from facemask.use.export import runner, tflite_input_size
    from facemask.use.predict import Classifier, Predictor

    cv2.setNumThreads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    classifier = Classifier(runner(model_file, threads=1), tflite_input_size(model_file), model_file)
    detector = make_detector(detector) if isinstance(detector, str) else detector
    _predictor = Predictor(classifier, detector, whole_image=whole_image)
    _predictor.predict_image(np.zeros((64, 64, 3), np.uint8), "warm-up", whole_image=True)
    _max_pixels = max_pixels


def predict(data: bytes, name: str, whole_image: bool | None) -> list[dict]:
    """predict --json's records for one uploaded image; an ImageError naming `name` when it is unreadable."""
    from facemask.core.images import Upload, load_rgb

    return _predictor.predict_image(load_rgb(Upload(data, name), _max_pixels), name, whole_image=whole_image)


def hold(seconds: float) -> int:
    """Keep a worker busy for `seconds`; returns its process id (the pool's start-up uses it)."""
    time.sleep(seconds)
    return os.getpid()


def convert(keras_file: str, out_dir: str) -> str:
    """Convert a saved Keras model to float TFLite in out_dir; returns the file (run in a process of its own)."""
    from facemask.core.tensorflow_logs import quiet_tensorflow

    quiet_tensorflow()
    from facemask.core.model import load
    from facemask.use.export import export

    return str(export(load(keras_file), out_dir, calibration=None, formats=("tflite",))["tflite"])
