"""An interrupted rate–distortion stage continues where it stopped.

A stage keeps its state (network, quantizers, optimizer, random-number generator, step, history and
seconds spent) in ``<stream>.partial.pt`` beside the stream it will write: every ``SAVE_EVERY_S``
seconds, when Ctrl-C stops it, and when its last step is done (until the stream is published). Run
again, the same stage — the same fit, the same start, the same options, frames and masks, the same
kind of device and vcm version, all in one key — loads it and continues, to the same bytes as a
stage that was never stopped. A state with another key is never used: the stage starts from the
beginning and replaces it.

A command with several λ also keeps each finished stage's end (``<stream>.stage_end.pt``) until the
command has finished, so that run again it skips the streams already written and a chain's next
stage starts where the last finished one ended.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from vcm.fsutil import atomic_path

PARTIAL = ".partial.pt"  # appended to the stream's name: the stage in progress
END = ".stage_end.pt"  # appended to the stream's name: a finished stage of a command still running
SAVE_EVERY_S = 30.0


def partial_path(stream: Path) -> Path:
    return stream.with_name(stream.name + PARTIAL)


def end_path(stream: Path) -> Path:
    return stream.with_name(stream.name + END)


def tensors_digest(*states: dict | None) -> str:
    """sha256 of state dicts' names, shapes, dtypes and bytes (``None`` counts as empty): what a stage
    starts from, the same whether it is held in memory or was saved and loaded again."""
    h = hashlib.sha256()
    for state in states:
        for name in sorted(state or {}):
            t = state[name].detach().cpu().contiguous()
            h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
            h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
        h.update(b"|")
    return h.hexdigest()


def stage_key(fit_checkpoint: Path, start: str, opts, masks_u8: np.ndarray | None, device: torch.device) -> str:
    """What makes a stage's run the same run: the fit's checkpoint (its bytes, which hold the frames'
    fingerprint), where the stage starts (``start``: "fit", or :func:`tensors_digest` of another stage's
    end), the options, the edge masks (SA-NeRV), the kind of device and vcm's version."""
    from vcm import __version__

    h = hashlib.sha256()
    with open(fit_checkpoint, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    h.update(json.dumps({"start": start, "options": asdict(opts), "device": device.type, "vcm": __version__},
                        sort_keys=True, default=str).encode())
    if masks_u8 is not None:
        h.update(np.ascontiguousarray(masks_u8).data)
    return h.hexdigest()


@dataclass
class StageCheckpoint:
    """Where one stage keeps its state (``path``) and the key a saved state must carry to be used."""

    path: Path
    key: str
    _saved_at: float = 0.0

    def load(self) -> dict | None:
        """The saved state of this very stage, or None (nothing saved, unreadable, or another stage's)."""
        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception:  # damaged or not ours: the stage starts afresh and replaces it
            return None
        if not isinstance(state, dict) or state.get("key") != self.key:
            return None
        return state

    def save(self, state: dict) -> None:
        with atomic_path(self.path) as tmp:
            torch.save({**state, "key": self.key}, tmp)
        self._saved_at = time.monotonic()

    def due(self) -> bool:
        """Whether ``SAVE_EVERY_S`` have passed since the last save (or since the stage began)."""
        if not self._saved_at:
            self._saved_at = time.monotonic()
        return time.monotonic() - self._saved_at >= SAVE_EVERY_S

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def rng_state(device: torch.device) -> dict:
    """The generators a stage draws its noise from (the CPU's, and the GPU's on CUDA)."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
