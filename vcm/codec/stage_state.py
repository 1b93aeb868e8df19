"""An interrupted stage of ``vcm compress`` continues where it stopped.

A stage (:class:`ResumableStage`: a rate–distortion stage, a rate-control trial, the paper pipeline's
fine-tunes as phases of one stage) keeps its state (network, quantizers, optimizer, random-number
generator, step, history and seconds spent) in ``<stream>.partial.pt`` beside the stream it will write: every ``SAVE_EVERY_S``
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

import glob
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vcm import progress
from vcm.device import rng_state, set_rng_state
from vcm.diverged import refuse_nonfinite
from vcm.errors import VcmError
from vcm.fsutil import load_torch_dict, save_torch

PARTIAL = ".partial.pt"  # appended to the stream's name: the stage in progress
END = ".stage_end.pt"  # appended to the stream's name: a finished stage of a command still running
SAVE_EVERY_S = 30.0


def partial_path(stream: Path) -> Path:
    return stream.with_name(stream.name + PARTIAL)


def end_path(stream: Path) -> Path:
    return stream.with_name(stream.name + END)


def discard_partials(stream: Path) -> None:
    """Remove every stage state kept for ``stream`` (its stages' and their phases'): it is written."""
    for path in stream.parent.glob(glob.escape(stream.name) + "*" + PARTIAL):
        path.unlink(missing_ok=True)


def tensors_digest(*states: dict | None) -> str:
    """sha256 of state dicts' names, shapes, dtypes and bytes (``None`` counts as empty): what a stage
    starts from, the same whether it is held in memory or was saved and loaded again."""
    h = hashlib.sha256()
    for state in states:
        for name in sorted(state or {}):
            t = state[name].detach().cpu().contiguous()
            h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
            h.update(t.numpy().tobytes())
        h.update(b"|")
    return h.hexdigest()


def stage_key(fit: str, start: str, opts, masks_u8: np.ndarray | None, device: torch.device) -> str:
    """What makes a stage's run the same run: the fit (``fit``: ``vcm.provenance.file_fingerprint`` of its checkpoint, which
    holds the frames' fingerprint), where the stage starts (``start``: "fit", or :func:`tensors_digest` of
    another stage's end), the options, the edge masks (SA-NeRV), the kind of device and vcm's version."""
    from vcm import __version__

    h = hashlib.sha256(fit.encode())
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

    @classmethod
    def keyed(cls, path: Path, what: dict) -> "StageCheckpoint":
        """A checkpoint whose key is a digest of ``what`` (JSON-able: everything the saved work depends on)."""
        return cls(Path(path), hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest())

    def load(self) -> dict | None:
        """The saved state of this very stage, or None (nothing saved, unreadable, or another stage's)."""
        if not self.path.is_file():
            return None
        try:
            state = load_torch_dict(self.path, "a stage's saved state")
        except VcmError:  # damaged or not ours: the stage starts afresh and replaces it
            return None
        return state if state.get("key") == self.key else None

    def save(self, state: dict) -> None:
        save_torch(self.path, {**state, "key": self.key})
        self._saved_at = time.monotonic()

    def due(self) -> bool:
        """Whether ``SAVE_EVERY_S`` have passed since the last save (or since the stage began)."""
        if not self._saved_at:
            self._saved_at = time.monotonic()
        return time.monotonic() - self._saved_at >= SAVE_EVERY_S

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)

    def phase(self, name: str) -> "StageCheckpoint":
        """The checkpoint of one phase of this stage (the paper pipeline's prune and QAT fine-tunes), kept
        beside it (``<stream>.<name>.partial.pt``) so that a finished phase's state survives the next one's."""
        stem = self.path.name[:-len(PARTIAL)] if self.path.name.endswith(PARTIAL) else self.path.name
        key = hashlib.sha256(f"{self.key}/{name}".encode()).hexdigest()
        return StageCheckpoint(self.path.with_name(f"{stem}.{name}{PARTIAL}"), key)


@dataclass
class ResumableStage:
    """A training stage that keeps its state at ``checkpoint`` (None: it runs to its end, as before).

    ``parts``: what it trains, by name (modules and the optimizer: anything with ``state_dict`` and
    ``load_state_dict``); ``what``: the stage as the log and ``vcm info`` name it; ``info``: more fields
    to record (λ). :meth:`resume` loads a state the same stage saved, :meth:`run` trains with Ctrl-C
    stopping after the step in progress, saving every ``SAVE_EVERY_S`` seconds and at its end, and
    raises KeyboardInterrupt after saving when stopped early."""

    checkpoint: StageCheckpoint | None
    parts: dict
    device: torch.device
    what: str
    info: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    start: int = 0
    earlier_seconds: float = 0.0

    def resume(self, steps: int) -> int:
        """Load this stage's saved state when there is one → the step to start from (0 without)."""
        saved = self.checkpoint.load() if self.checkpoint is not None else None
        if saved is None:
            if self.checkpoint is not None and self.checkpoint.path.exists():
                progress.log(f"{self.what}: {self.checkpoint.path.name} holds another stage's state (another fit, "
                             f"start, options or device) or a damaged one; this stage starts from its first step and "
                             f"replaces it")
            return 0
        for name, part in self.parts.items():
            part.load_state_dict(saved[name])
        set_rng_state(saved["rng"], self.device)
        self.start, self.history[:], self.earlier_seconds = int(saved["step"]), saved["history"], float(saved["seconds"])
        progress.log(f"{self.what}: continuing from step {self.start} of {steps} (saved in {self.checkpoint.path.name})")
        return self.start

    def run(self, train: Callable[[int, Callable[[int], bool] | None, Callable[[int], None]], tuple[int, bool]],
            steps: int, should_stop: Callable[[int], bool] | None = None) -> None:
        """``train(start, stop, on_step) → (step, interrupted)`` from :meth:`resume`'s step to ``steps``."""
        from vcm.nerv.train import DIVERGED_ADVICE, StopFlag

        began = time.time()

        def save(step: int) -> None:
            states = {name: part.state_dict() for name, part in self.parts.items()}
            for name, part in self.parts.items():
                if isinstance(part, torch.nn.Module):
                    refuse_nonfinite(states[name], f"{self.what}: {name}", DIVERGED_ADVICE)
            self.checkpoint.save({**states,
                                  "rng": rng_state(self.device), "step": step, "steps": steps, "what": self.what,
                                  **self.info, "history": self.history,
                                  "seconds": self.earlier_seconds + time.time() - began})

        def on_step(step: int) -> None:
            if self.checkpoint is not None and self.checkpoint.due():
                save(step)

        if self.checkpoint is None:  # any Ctrl-C stops it at once, as a stage that keeps nothing
            train(self.start, None, on_step)
            return
        with StopFlag(should_stop) as stop:  # Ctrl-C stops after the step in progress
            step, interrupted = train(self.start, stop, on_step)
        save(step)  # the last step's too: a stage stopped before its stream is written need not train again
        if interrupted:
            progress.log(f"{self.what}: stopped at step {step} of {steps}; its state is saved in "
                         f"{self.checkpoint.path}: the same command again continues from there", style="yellow")
            raise KeyboardInterrupt

    def resumed(self) -> dict:
        """Report fields: where a continued stage started again, and its seconds before (none when it did not)."""
        return {"resumed": {"step": self.start, "seconds": round(self.earlier_seconds, 3)}} if self.start else {}
