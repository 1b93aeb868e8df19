"""Which parameters of a NeRV belong to which tensor group, and how they split into channels."""

from __future__ import annotations

from vcm.nerv.model import NervConfig

GROUPS = ("stem", "blocks", "head", "bias")
PRUNABLE = ("stem", "blocks")  # global magnitude pruning: stem and conv weights, not head or biases


def group_of(name: str) -> str:
    if name.endswith(".bias"):
        return "bias"
    return name.split(".", 1)[0]


def channels_of(name: str, shape: tuple[int, ...], cfg: NervConfig) -> int:
    """Quantization channels of a tensor: rows are grouped into this many contiguous channels.

    Conv and hidden Linear weights: their output channels. The stem's last Linear produces the
    (fc_dim, grid_h, grid_w) feature grid, so its channels are the fc_dim grid channels.
    Biases: one channel (per-tensor).
    """
    if name.endswith(".bias") or len(shape) < 2:
        return 1
    if name.startswith("stem.") and shape[0] == cfg.fc_dim * cfg.grid_h * cfg.grid_w:
        return cfg.fc_dim
    return shape[0]
