"""The files of a fit's run folder, by name: reading them here imports no torch (``vcm info`` on a video
asks whether a folder is a run before anything else)."""

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
METRICS = "metrics.json"
