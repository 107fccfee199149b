"""The ground floor: what every other part of facemask needs (the classes, the user's errors, images, params,
paths, the model builder). Nothing here imports from the floors above."""

CLASSES = ("with_mask_old", "with_mask_young", "without_mask_old", "without_mask_young")


class UserError(Exception):
    """A problem the user can fix (bad input, params, missing files); shown without a traceback."""
