"""Causal context model for grids coded along time (``.nerv`` from v4, coding ``rd``).

A grid tensor ``[T, …, H, W]`` is coded as differences along time, d (see
:mod:`vcm.codec.rd_coding`). Neighbouring grid cells of d are correlated in sign and in size, which a
single Laplace per tensor cannot use. This model codes d row by row (axis −2); each value is
predicted from the three already-decoded values above it, U (same column), UL and UR (the columns
either side; 0 beyond the edge and on the first row):

    pred     = ⌊(w_U·U + w_UL·UL + w_UR·UR + 16) / 32⌋     (integer weights w ∈ [−128, 127])
    activity = 2·|U| + |UL| + |UR|
    bucket   = number of thresholds 1, 2, 4, …, 64 that activity reaches (0 … 7)

and the residual d − pred is coded under the zero-mean Laplace (:mod:`laplace`) of its bucket: the
larger the neighbours, the wider the law. Everything is integer arithmetic on decoded symbols, so
encoder and decoder compute the same contexts on every platform.

From format version 6 the model also sees the value to the left, L (same row, the column before), and
the same cell's difference one slice earlier along time, T (axis 0):

    pred     = ⌊(w_U·U + w_UL·UL + w_UR·UR + w_L·L + w_T·T + 16) / 32⌋
    activity = 2·|U| + |UL| + |UR| + 2·|L| + |T|

and decodes slice by slice along time, and within a slice in waves of the cells with the same 2·row +
column: a cell's U, UL, UR and L all lie on earlier waves, so every cell of a wave (in every channel)
decodes at once. On the dev clips' streams this took another 0.5–6.2 % off the files (docs/entropy-coding.md).

Parameters per tensor, fitted by the encoder on the symbols it codes: the three weights (least
squares, then rounded) and one Laplace code m per bucket (maximum likelihood over the 8-bit codes
from format version 5, over the 16-bit ones before).
Measured on the dev clips' rate–distortion streams, this takes 3–22 % off the grids' bits (parameters counted).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vcm.entropy_models import laplace

BUCKETS = 8
THRESHOLDS = np.array([1, 2, 4, 8, 16, 32, 64], dtype=np.int64)  # activity ≥ t_k ⇒ bucket > k
WEIGHT_UNIT = 32
WEIGHT_RANGE = (-128, 127)  # one signed byte each
UNUSED_M = laplace.S_ONE // 2  # the code written for a bucket no symbol falls in (any valid m)


ROWS, WAVES = 3, 5  # the weights of each model: (U, UL, UR) row by row (v4, v5); (U, UL, UR, L, T) in waves (v6)
ACTIVITY = (2, 1, 1, 2, 1)  # each neighbour's weight in the activity (the first three: the row model's)


@dataclass(frozen=True)
class ContextParams:
    """What the stream carries for one context-coded tensor; the number of weights names the model."""

    weights: tuple[int, ...]  # w_U, w_UL, w_UR (and from version 6 w_L, w_T) in units of 1/32
    lo: int  # smallest residual
    span: int  # largest − smallest + 1
    ms: tuple[int, ...]  # one Laplace code per bucket (BUCKETS of them, each 1 … 2¹⁶ − 1)


def has_rows(shape: tuple[int, ...]) -> bool:
    """Whether a grid ``[T, …, H, W]`` has rows (axis −2) and columns to predict from."""
    return len(shape) >= 3 and shape[-2] >= 2


def buckets_torch(d: torch.Tensor) -> torch.Tensor:
    """The bucket of every value of ``d`` (``[T, …, H, W]``, any real values: rounded first), as
    :func:`contexts` gives it under the row model — what training weighs each coded value's scale by. The
    wave model of format version 6 codes with more neighbours than training sees, so its files come in
    below this estimate."""
    d = torch.round(d)
    u = torch.zeros_like(d)
    u[..., 1:, :] = d[..., :-1, :]
    ul, ur = torch.zeros_like(u), torch.zeros_like(u)
    ul[..., 1:] = u[..., :-1]
    ur[..., :-1] = u[..., 1:]
    activity = 2 * u.abs() + ul.abs() + ur.abs()
    return torch.bucketize(activity, torch.as_tensor(THRESHOLDS, dtype=activity.dtype, device=activity.device), right=True)


def neighbours(above: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """U, UL, UR (``int64``, same shape) of the row below ``above`` (``[…, W]``; zeros for row 0)."""
    ul = np.zeros_like(above)
    ur = np.zeros_like(above)
    ul[..., 1:] = above[..., :-1]
    ur[..., :-1] = above[..., 1:]
    return above, ul, ur


def row_context(above: np.ndarray, weights: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(bucket, prediction) of every value of the row below ``above`` (both ``int64``, same shape)."""
    return _combine(neighbours(above), weights)


def _rows_above(d: np.ndarray) -> np.ndarray:
    """Each value's row above (zeros for row 0): ``d`` shifted down one row along axis −2."""
    above = np.zeros_like(d)
    above[..., 1:, :] = d[..., :-1, :]
    return above


def contexts(d: np.ndarray, weights: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(bucket, prediction) of every value of ``d`` (``int64 [T, …, H, W]``) at once (encoder side), under the
    row model (three weights) or the wave model (five)."""
    return _combine(_features(d, len(weights)), weights)


def _features(d: np.ndarray, model: int) -> tuple[np.ndarray, ...]:
    """The neighbours each value of ``d`` is predicted from: U, UL, UR under the row model; also L and T under the
    wave model."""
    return neighbours(_rows_above(d)) if model == ROWS else wave_neighbours(d)


def wave_neighbours(d: np.ndarray) -> tuple[np.ndarray, ...]:
    """U, UL, UR, L, T of every value of ``d`` (``[T, …, H, W]``; 0 beyond an edge and before the first slice)."""
    u, ul, ur = neighbours(_rows_above(d))
    left = np.zeros_like(d)
    left[..., 1:] = d[..., :-1]
    before = np.zeros_like(d)
    before[1:] = d[:-1]
    return u, ul, ur, left, before


def _combine(features: tuple[np.ndarray, ...], weights: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(bucket, prediction) from a model's neighbours (U, UL, UR, then L, T under the wave model; any shapes alike,
    ``int64``): each weighs in the activity by :data:`ACTIVITY` and in the prediction by its weight."""
    activity = sum(a * np.abs(f) for a, f in zip(ACTIVITY, features))
    bucket = np.searchsorted(THRESHOLDS, activity, side="right")
    pred = (sum(w * f for w, f in zip(weights, features)) + WEIGHT_UNIT // 2) // WEIGHT_UNIT
    return bucket, pred


def waves(rows: int, cols: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(row indices, column indices) of each wave of a ``rows``×``cols`` slice, in decoding order: the cells with
    2·row + column = 0, 1, 2, … (a cell's U, UL, UR and L lie on earlier waves), within a wave by row."""
    i, j = np.divmod(np.arange(rows * cols), cols)
    key = 2 * i + j
    order = np.lexsort((i, key))
    bounds = np.flatnonzero(np.diff(key[order])) + 1
    return [(i[c], j[c]) for c in np.split(order, bounds)]


def wave_context(padded: np.ndarray, before: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                 weights: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(bucket, prediction) ``[C, n]`` of a wave's cells (``rows``, ``cols``) of a slice being decoded:
    ``padded`` holds its decoded values ``[C, H + 1, W + 2]`` (a zero row above, a zero column each side),
    ``before`` the previous slice's ``[C, H, W]`` (zeros for the first)."""
    features = (padded[:, rows, cols + 1], padded[:, rows, cols], padded[:, rows, cols + 2],
                padded[:, rows + 1, cols], before[:, rows, cols])
    return _combine(features, weights)


def fit_weights(d: np.ndarray, model: int = ROWS) -> tuple[int, ...]:
    """Least-squares prediction weights of ``d`` from its neighbours (above; with ``WAVES`` also left and one
    slice earlier), in units of 1/32."""
    x = np.stack([n.ravel() for n in _features(d, model)], axis=1).astype(np.float64)
    if not x.any():
        return (0,) * model
    w = np.linalg.lstsq(x, d.ravel().astype(np.float64), rcond=None)[0]
    return tuple(int(v) for v in np.clip(np.round(w * WEIGHT_UNIT), *WEIGHT_RANGE))


_M_GRID = np.unique(np.round(np.geomspace(1, laplace.S_ONE - 1, 160)).astype(np.int64))


def bucket_bits(symbols: np.ndarray, m: int, lo: int, hi: int) -> float:
    """Code length in bits of ``symbols`` (within lo … hi) under the Laplace code m over lo … hi."""
    if symbols.size == 0:
        return 0.0
    return laplace.histogram_bits(np.bincount(symbols - lo, minlength=hi - lo + 1), m, lo, hi)


def best_m(symbols: np.ndarray, lo: int, hi: int, compact: bool = True) -> tuple[int, float]:
    """The Laplace code m with the fewest bits for ``symbols`` (coded over lo … hi), and those bits;
    ``compact``: among the 8-bit codes' m (format version 5), else among all 16-bit ones (version 4)."""
    if symbols.size == 0:
        return UNUSED_M, 0.0
    counts = np.bincount(symbols - lo, minlength=hi - lo + 1)
    if compact:
        return laplace.best_code(counts, lo, hi)

    def bits(m: int) -> float:
        return laplace.histogram_bits(counts, m, lo, hi)

    scored = [(bits(m), int(m)) for m in _M_GRID]
    b, m = min(scored)
    i = int(np.searchsorted(_M_GRID, m))
    near = range(int(_M_GRID[max(i - 1, 0)]), int(_M_GRID[min(i + 1, len(_M_GRID) - 1)]) + 1)
    step = max(1, len(near) // 64)  # a fine pass between the coarse neighbours
    b, m = min([(b, m)] + [(bits(k), k) for k in near[::step]])
    return m, b


def fit(d: np.ndarray, compact: bool = True, model: int = ROWS) -> tuple[ContextParams, float]:
    """The parameters for coding ``d`` (``int64 [T, …, H, W]``) and its code length in bits (symbols
    only; the caller adds the parameters' bits). Tries the fitted weights and no prediction;
    ``compact``: each bucket's m among the 8-bit codes' (format version 5); ``model``: ``ROWS`` or
    ``WAVES`` (format version 6)."""
    best = None
    for weights in dict.fromkeys([(0,) * model, fit_weights(d, model)]):  # a tie keeps no prediction
        bucket, pred = contexts(d, weights)
        r = d - pred
        lo, hi = int(r.min()), int(r.max())
        ms, total = [], 0.0
        for k in range(BUCKETS):
            m, b = best_m(r[bucket == k], lo, hi, compact) if hi > lo else (UNUSED_M, 0.0)
            ms.append(m)
            total += b
        if best is None or total < best[1]:
            best = (ContextParams(weights, lo, hi - lo + 1, tuple(ms)), total)
    return best


def code_length(d: np.ndarray, p: ContextParams) -> float:
    """Bits of ``d`` under the context model ``p`` (symbols only, as :func:`fit` counts them)."""
    if p.span < 2:
        return 0.0
    bucket, pred = contexts(d, p.weights)
    residual = d - pred
    return sum(bucket_bits(residual[bucket == k], p.ms[k], p.lo, p.lo + p.span - 1) for k in range(BUCKETS))
