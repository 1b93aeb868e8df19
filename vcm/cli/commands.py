"""Register every command module on the app."""

from vcm.cli import compress, ctc, demo, evaluate, fit, icm, info, masks  # noqa: F401
