"""TensorFlow's C++ log lines kept off the terminal: entry points (stages, the CLI, benchmarks) call
quiet_tensorflow() before anything imports Keras."""
import os
import sys


def quiet_tensorflow() -> None:
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
