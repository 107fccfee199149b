"""facemask: a 4-class face classifier (mask x age) and the pipeline that trains it."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of stage logs

CLASSES = ("with_mask_old", "with_mask_young", "without_mask_old", "without_mask_young")


class UserError(Exception):
    """A problem the user can fix (bad input, params, missing files); shown without a traceback."""
