"""Register every command module on the app."""

from vcm.cli import compress, config, ctc, demo, evaluate, fit, icm, info, masks  # noqa: F401
