"""The one exception type for problems a user can fix (bad path, wrong size, corrupt stream...)."""


class VcmError(Exception):
    """A user-facing error. The CLI prints ``str(err)`` on one line and exits non-zero.

    The message should say what is wrong and what to do about it.
    """


class VideoOptionError(VcmError):
    """A video that needs one of its reading options given or changed: a command's ``--size``, ``--fps``,
    ``--bit-depth`` or ``--frames``, which the message names. A CTC config gives the same in the sequence's
    entry (``size``, ``fps``, ``bit_depth``, ``frames``), so its runner can say where."""
