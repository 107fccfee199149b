"""facemask: a 4-class face classifier (mask x age) and the pipeline that trains it."""
import os
import sys

CLASSES = ("with_mask_old", "with_mask_young", "without_mask_old", "without_mask_young")


class UserError(Exception):
    """A problem the user can fix (bad input, params, missing files); shown without a traceback."""


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ log lines kept off the terminal: the start-up ones (oneDNN, CPU
    features, absl), which TensorFlow 2.21 writes to file descriptor 2 before any log level applies (so
    stderr points at /dev/null for the import alone), and later ones below FATAL. FACEMASK_TF_LOGS=1
    shows them all again.
    """
    if os.environ.get("FACEMASK_TF_LOGS") == "1" or "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # also its spurious per-epoch graph "errors" (E0000 lines)
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


_import_tensorflow_quietly()
