"""What a compression method's training stage hands on: the tensors to code and a typed result."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StageResult:
    """A method's outcome besides its coded tensors.

    ``report``: the fields the stream's report shows (method, λ or bits, steps, …);
    ``estimate_bits``: the trained entropy models' code length of the final symbols (rate–distortion);
    ``history``: per-epoch loss, PSNR and bits per pixel; ``quantizers``: the trained quantizers'
    state, from which another λ can start (rate control's warm trials)."""

    report: dict
    estimate_bits: float | None = None
    history: list = field(default_factory=list)
    quantizers: dict | None = None
