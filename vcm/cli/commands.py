"""Register every command module on the app."""

from vcm.cli import compress, demo, evaluate, fit, info, masks  # noqa: F401
