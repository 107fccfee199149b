"""TensorFlow and Keras for the library, imported with TensorFlow's start-up log lines kept off the terminal.

Modules that need them import them from here (`from facemask.core.quiet_tf import keras, tf`), so the stages
and commands that need neither (ingest, split, synthesize, select, results) start without loading TensorFlow."""
from facemask.core.tensorflow_logs import quiet_tensorflow

quiet_tensorflow()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

__all__ = ["keras", "tf"]
