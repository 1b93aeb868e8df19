"""The one schedule by which a network learns to be quantized, for rate-aware fitting (``vcm fit
--lambda``) and for the rate–distortion stage (``vcm compress --lambda``).

Optimiser steps ``[0, start)`` train without quantization; ``[start, switch)`` through additive
uniform noise of one quantization step (a differentiable stand-in for rounding); ``[switch, end)``
through rounding with a straight-through gradient, so that the last steps see exactly what the
decoder will. The schedule owns its step count: the training loop calls ``advance`` after each
optimiser step.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class QuantizationSchedule:
    """Where a training stage is on the way plain → noise → rounding (steps are optimiser steps)."""

    start: int  # first step trained through the quantizers
    switch: int  # first step trained through rounding
    step: int = 0  # the next optimiser step

    @classmethod
    def over(cls, total: int, start_fraction: float, noise_fraction: float, step: int = 0) -> "QuantizationSchedule":
        """The schedule of a ``total``-step stage: quantizers from ``start_fraction`` of it; of the steps
        after that, ``noise_fraction`` with noise, the rest rounded."""
        start = round(start_fraction * total)
        return cls(start, start + round(noise_fraction * (total - start)), step)

    def mode(self) -> str | None:
        """How the current step quantizes: None (not yet), ``"noise"`` or ``"round"``."""
        if self.step < self.start:
            return None
        return "noise" if self.step < self.switch else "round"

    def advance(self) -> None:
        self.step += 1
