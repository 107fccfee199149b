"""facemask: a 4-class face classifier (mask x age) and the pipeline that trains it."""

CLASSES = ("with_mask_old", "with_mask_young", "without_mask_old", "without_mask_young")


class UserError(Exception):
    """A problem the user can fix (bad input, params, missing files); shown without a traceback."""
