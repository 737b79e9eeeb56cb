"""The one exception type for mistakes a user can fix (bad path, bad key, bad image)."""


class UserError(Exception):
    """Reported to the user as one line and a non-zero exit code, never as a traceback."""
