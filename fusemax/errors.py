"""The one exception type users see: every message says what is wrong and where."""


class FuseMaxError(Exception):
    """A user-facing error (bad input, a shape that does not fit, a format that overflows).

    The CLI prints ``str(error)`` without a traceback and exits with status 2.
    """
