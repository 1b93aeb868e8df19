"""Register every command module on the app."""

from vcm.cli import compress, ctc, demo, evaluate, fit, info, masks  # noqa: F401
