"""Register every command module on the app."""

from vcm.cli import demo, fit, info  # noqa: F401
