"""The one exception type for user mistakes: the CLI prints it as one line and exits non-zero."""


class UserError(ValueError):
    """Bad input from the user (a missing file, a wrong shape, an unknown name).

    The message must name the file or the value and say what is wrong; the CLI prints
    ``error: <message>`` with no traceback and exits with status 2.
    """
