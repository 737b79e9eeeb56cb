"""The one exception type for mistakes a user can fix (bad path, bad key, bad image)."""


class UserError(Exception):
    """Reported to the user as one line and a non-zero exit code, never as a traceback."""

    exit_code = 2


class Interrupted(UserError):
    """Ctrl-C: what was finished is saved; the message says where and how to go on."""

    exit_code = 130


def first_line(error: BaseException) -> str:
    """An exception's message cut to its first line, for one-line reports of library errors."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
