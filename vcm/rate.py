"""The rate of a bitstream, as the VCM CTC reports it (facts §3)."""

from __future__ import annotations


def rate(num_bytes: int, fps: float, frames: int, width: int, height: int) -> dict:
    """{"bytes", "kbps", "bpp"}: kbps = bytes·8·fps / (1000·frames); bpp = bits / (W·H·frames)."""
    return {"bytes": num_bytes, "kbps": num_bytes * 8 * fps / (1000 * frames),
            "bpp": num_bytes * 8 / (width * height * frames)}
