"""The one exception type that means "the user gave us something we cannot use".

The CLI turns it (and ValueError, OSError) into a one-line message and a
non-zero exit; anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input: a missing file, an incomplete dataset, an option out of range."""
