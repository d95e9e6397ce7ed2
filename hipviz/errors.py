"""Exceptions raised by hipviz.

Every message is one line a user can act on: it names the input (file or
value) and what is wrong with it, and where a fix is likely, the fix.
"""


class HipvizError(Exception):
    """Base class of every error hipviz raises on purpose."""


class InputError(HipvizError, ValueError):
    """A file or value supplied by the user cannot be used as given."""


class LandmarkError(HipvizError):
    """An anatomical landmark or frame could not be found on the geometry.

    ``bone`` ("pelvis" or "femur", when known) lets a caller name the file.
    """

    def __init__(self, message: str, *, bone: str | None = None):
        super().__init__(message)
        self.bone = bone
