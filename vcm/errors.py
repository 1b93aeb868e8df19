"""The one exception type for problems a user can fix (bad path, wrong size, corrupt stream...)."""


class VcmError(Exception):
    """A user-facing error. The CLI prints ``str(err)`` on one line and exits non-zero.

    The message should say what is wrong and what to do about it.
    """
