"""Register every command module on the app."""

from vcm.cli import compress, demo, fit, info, masks  # noqa: F401
