"""Learned quantization for rate–distortion training of any representation.

Every parameter tensor ``w`` (rows grouped into C channels, see ``quant_channels``) gets

- a learnable step per channel, log2-parameterised: Δ_c = 2^(log2_step_c); in the coded stream
  (and in ``round`` mode) the exponent is snapped to a grid of 1/8 octave, k_c = round(8·log2 Δ_c),
  and Δ_c = 2^⌊k/8⌋ · 2^((k mod 8)/8) built from float literals, identical in encoder and decoder;
- a learnable discretised-Laplace entropy model of its symbols (:mod:`vcm.entropy_models.laplace`).

Symbols are y = w / Δ. Modes:

- ``noise``: y + u, u ~ U(−½, ½) — a smooth stand-in for rounding whose rate estimate is
  differentiable (used first);
- ``round``: round(y) with a straight-through gradient — the forward pass sees exactly the
  weights the decoder rebuilds, ŵ = q · Δ in float32 (used last);
- ``hard``: round(y), no gradient (what is written to the stream).

A pruned weight (``keep`` mask 0) is symbol 0 in every mode.

A **temporal** tensor (its first axis is time, e.g. HiNeRV's grids ``[T, C, h, w]``) has one step
for the whole tensor and is entropy-coded as differences along time: frame 0's symbols, then
q_t − q_{t−1}. Neighbouring grid frames are alike, so the differences are small (half the entropy
of the symbols themselves on the demo's base grid), and the rate term teaches the grids to stay alike.
"""

from __future__ import annotations


import numpy as np
import torch
from torch import nn

from vcm.entropy_models import context, laplace

DEFAULT_LR = 2e-2  # Adam lr of the log2 steps and of the entropy models' log scales, unless a schedule says otherwise


def quantizer_lr(*asked: float | None) -> float:
    """The Adam lr of the quantization steps and entropy models: the first of ``asked`` given (a point's
    ``step_lr``, then the fit's ``rd_step_lr``), else :data:`DEFAULT_LR`. A rate-aware fit and a stage read it alike."""
    return next((lr for lr in asked if lr), DEFAULT_LR)

STEP_RES = 8  # log2-step grid: steps per octave
# 2^(j/8), j < 8, as float literals (parsed exactly everywhere; no pow() from libm).
_ROOTS = laplace.EIGHTH_ROOTS
STEP_CODE_RANGE = (-40 * STEP_RES, 8 * STEP_RES)  # steps from 2^-40 to 2^8
MODES = ("noise", "round", "hard")


def step_from_code(k: np.ndarray) -> np.ndarray:
    """Δ = 2^(k/8) as float32, bit-identical everywhere (literal × power of two)."""
    k = np.asarray(k, dtype=np.int64)
    return np.ldexp(np.asarray(_ROOTS)[k % STEP_RES], k // STEP_RES).astype(np.float32)


def _step_from_code_torch(k: torch.Tensor) -> torch.Tensor:
    roots = torch.tensor(_ROOTS, dtype=torch.float64, device=k.device)
    return torch.ldexp(roots[k % STEP_RES], torch.div(k, STEP_RES, rounding_mode="floor")).float()


def _straight_through(exact: torch.Tensor, surrogate: torch.Tensor) -> torch.Tensor:
    """Value of ``exact`` (bit for bit), gradient of ``surrogate``."""
    return exact.detach() + (surrogate - surrogate.detach())


def _step_codes(log2_step: torch.Tensor) -> torch.Tensor:
    """The stream's step codes k = round(8·log2 Δ), clamped to its range."""
    lo, hi = STEP_CODE_RANGE
    return torch.round(log2_step.detach() * STEP_RES).long().clamp(lo, hi)


def _step(log2_step: torch.Tensor, snapped: bool) -> torch.Tensor:
    """Δ = 2^log2_step; ``snapped``: the stream's Δ of its code, with the smooth one's gradient."""
    smooth = torch.exp2(log2_step)
    if not snapped:
        return smooth
    return _straight_through(_step_from_code_torch(_step_codes(log2_step)), smooth)


def along_time(y: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Symbols ``y`` (any layout of ``shape``'s elements) as a temporal tensor is entropy-coded, flat:
    slice 0 of axis 0, then the differences of consecutive slices."""
    y = y.reshape(shape)
    return torch.cat([y[:1], torch.diff(y, dim=0)]).reshape(-1)


class TensorQuantizer(nn.Module):
    """Steps and entropy model of one parameter tensor ``[C, …]`` (rows ``[C, K]``); the quantization
    itself runs in :class:`RateDistortionModel`, over all tensors at once."""

    def __init__(self, w: torch.Tensor, channels: int, init_bits: int = 8, temporal: bool = False):
        super().__init__()
        self.temporal = temporal and w.dim() >= 2 and w.shape[0] > 1
        self.shape = tuple(w.shape)
        channels = 1 if self.temporal else channels
        w2 = w.detach().reshape(channels, -1).float()
        # A channel that is (still) all zeros, e.g. a local grid initialised at 0, gets the step of a
        # 1e-3 range: with a step near 1e-10 the first training steps would make symbols of 10⁷.
        amax = w2.abs().amax(dim=1).clamp(min=1e-3)
        self.channels = channels
        self.log2_step = nn.Parameter(torch.log2(amax / 2 ** (init_bits - 1)))
        y = w2 / 2 ** self.log2_step.detach()[:, None]
        y = along_time(y, self.shape) if self.temporal else y
        self.log_b = nn.Parameter(torch.log(y.abs().mean().clamp(min=0.5)).reshape(()))
        # A grid the stream may code with the context model gets a scale per bucket of that model (the
        # size of the decoded values above), so that the rate it trains against is the one it is coded
        # at; its one scale ``log_b`` is then unused. Prediction weights are the encoder's, not trained.
        self.contextual = self.temporal and context.has_rows(self.shape)
        if self.contextual:
            self.log_b_context = nn.Parameter(self.log_b.detach().clone().repeat(context.BUCKETS))

    def step_codes(self) -> torch.Tensor:
        return _step_codes(self.log2_step)

    def coded_log_b(self) -> float:
        """The one scale a stream that codes this tensor under one Laplace starts from (a contextual
        grid's: the mean of its buckets')."""
        return float((self.log_b_context.mean() if self.contextual else self.log_b).detach())

    def step(self, snapped: bool) -> torch.Tensor:
        """Δ per channel ``[C]``; snapped to the stream's grid with a straight-through gradient."""
        return _step(self.log2_step, snapped)

    @torch.no_grad()
    def symbols(self, w: torch.Tensor, keep: torch.Tensor | None = None) -> np.ndarray:
        """Integer symbols ``int32 [C, K]`` exactly as coded."""
        step = self.step(snapped=True)[:, None]
        q = torch.round(w.detach().reshape(self.channels, -1).float() / step)
        if keep is not None:
            q = q * keep.reshape(self.channels, -1).to(q.dtype)
        return q.cpu().numpy().astype(np.int32)


def _key(name: str) -> str:
    return name.replace(".", "__")


class RateDistortionModel(nn.Module):
    """A representation with a quantizer per parameter: ``forward(t, mode) → (x̂, bits)``.

    ``bits`` is the entropy models' estimate of the code length of all parameters, a scalar.
    """

    def __init__(self, model: nn.Module, keep: dict[str, torch.Tensor] | None = None, init_bits: int = 8,
                 temporal: bool = True):
        """``temporal``: code the tensors the representation marks as temporal (``temporal(name, shape)``)
        as differences along time; False codes every symbol as it is."""
        super().__init__()
        self.model = model
        is_temporal = getattr(model, "temporal", lambda name, shape: False)
        self.quantizers = nn.ModuleDict({
            _key(n): TensorQuantizer(p, model.quant_channels(n, tuple(p.shape)), init_bits,
                                     temporal and is_temporal(n, tuple(p.shape)))
            for n, p in model.named_parameters()})
        self._index_all_parameters(keep or {})

    def _index_all_parameters(self, keep_masks: dict[str, torch.Tensor]) -> None:
        """Maps from the concatenation of all parameters (``[N]``, model order) to their channels and
        tensors, so that one step quantizes and rates every parameter (a loop over ~70 tensors of a
        few hundred values each costs more in per-operation overhead than the arithmetic)."""
        names = [n for n, _ in self.model.named_parameters()]
        quantizers = [self.quantizer(n) for n in names]
        params = dict(self.model.named_parameters())
        sizes = [params[n].numel() for n in names]
        channel, tensor, keep, segments = [], [], [], []
        contextual = {}  # segment index → the quantizer of a grid rated per context bucket
        start = first_channel = 0
        for i, (n, q, size) in enumerate(zip(names, quantizers, sizes)):
            channel.append(first_channel + torch.arange(size) // max(1, size // q.channels))
            tensor.append(torch.full((size,), i))
            mask = keep_masks.get(n)
            keep.append(torch.ones(size) if mask is None else mask.detach().reshape(-1).float().cpu())
            if q.temporal:
                if q.contextual:
                    contextual[len(segments)] = q
                segments.append((start, start + size, q.shape))
            elif segments and segments[-1][2] is None and segments[-1][1] == start:
                segments[-1] = (segments[-1][0], start + size, None)  # runs of plain tensors: one slice
            else:
                segments.append((start, start + size, None))
            start, first_channel = start + size, first_channel + q.channels
        self._names, self._sizes, self._segments, self._contextual = names, sizes, segments, contextual
        self.register_buffer("_channel", torch.cat(channel), persistent=False)
        self.register_buffer("_tensor", torch.cat(tensor), persistent=False)
        self.register_buffer("_keep", torch.cat(keep) if keep_masks else None, persistent=False)

    def quantizer(self, name: str) -> TensorQuantizer:
        return self.quantizers[_key(name)]

    def quantized_params(self, mode: str, generator: torch.Generator | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """({name: ŵ}, bits of all symbols under their entropy models); ``generator`` draws the noise."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        quantizers = [self.quantizer(n) for n in self._names]
        params = dict(self.model.named_parameters())
        w = torch.cat([params[n].reshape(-1) for n in self._names])
        # index_select, not [index]: the latter's gradient sums in a thread-dependent order on the CPU (two runs of a
        # stage on two threads gave other bytes), and is several times slower; on one thread the two are equal
        step = torch.index_select(_step(torch.cat([q.log2_step for q in quantizers]), snapped=mode != "noise"), 0,
                                  self._channel)
        y = w / step
        if mode == "noise":
            y = y + torch.empty_like(y).uniform_(-0.5, 0.5, generator=generator)
        elif mode == "round":
            y = _straight_through(torch.round(y), y)
        else:
            y = torch.round(y).detach()
        if self._keep is not None:
            y = y * self._keep
        w_hat = y * step
        coded = torch.cat([y[a:b] if shape is None else along_time(y[a:b], shape) for a, b, shape in self._segments])
        log_b = torch.index_select(torch.stack([q.log_b for q in quantizers]), 0, self._tensor)
        if self._contextual:  # a grid rated per context bucket: each value under its bucket's scale
            scales = []
            for i, (a, b, shape) in enumerate(self._segments):
                q = self._contextual.get(i)
                scales.append(log_b[a:b] if q is None else
                              torch.index_select(q.log_b_context, 0, context.buckets_torch(
                                  coded[a:b].detach().reshape(shape)).reshape(-1)))
            log_b = torch.cat(scales)
        bits = laplace.bits(coded, log_b).sum()
        pieces = torch.split(w_hat, self._sizes)
        return {n: piece.view(params[n].shape) for n, piece in zip(self._names, pieces)}, bits

    def forward(self, t: torch.Tensor, mode: str = "noise",
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        params, total = self.quantized_params(mode, generator)
        return torch.func.functional_call(self.model, params, (t,)), total

    def optimizer_groups(self, base_lr: float, step_lr: float, entropy_lr: float) -> list[dict]:
        """Adam groups of the steps and entropy scales at absolute rates (``lr_scale`` against the
        schedule's ``base_lr``, as ``train_epochs`` applies it)."""
        return [
            {"params": [q.log2_step for q in self.quantizers.values()], "lr_scale": step_lr / base_lr, "betas": (0.9, 0.999)},
            {"params": [q.log_b_context if q.contextual else q.log_b for q in self.quantizers.values()],
             "lr_scale": entropy_lr / base_lr, "betas": (0.9, 0.999)},
        ]

    def complete_state(self, state: dict) -> dict:
        """A quantizer state saved before grids had a scale per context bucket, completed: each of a
        contextual grid's buckets starts at the grid's one saved scale. Any other state is returned as is."""
        out = dict(state)
        for key, q in self.quantizers.items():
            if q.contextual and f"{key}.log_b_context" not in out and f"{key}.log_b" in out:
                out[f"{key}.log_b_context"] = out[f"{key}.log_b"].detach().reshape(()).repeat(context.BUCKETS)
        return out

    @torch.no_grad()
    def estimate_bits(self) -> float:
        """The training-time rate estimate of the final symbols (trained entropy models)."""
        _, total = self.quantized_params("hard")
        return float(total)


def bpp_scale(height: int, width: int, frames: int) -> float:
    """Bits → bits per pixel of the video."""
    return 1.0 / (height * width * frames)


