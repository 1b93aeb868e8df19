"""Discretised zero-mean Laplace entropy model: the density rate–distortion training learns and the
``.nerv`` v2 stream codes with.

For symbols y (integers after rounding, real with additive uniform noise) and a Laplace of scale
b > 0 (in symbol units), the mass of the unit bin around y is

    p(y) = F(y + ½) − F(y − ½),   F the Laplace CDF,

which at integers is a two-sided geometric law with ratio θ = s², s = exp(−1 / (2b)):

    p(0) = 1 − s,   p(q) = ½ (1 − s²) · s^(2|q| − 1)   (q ≠ 0).

The stream stores s as a 16-bit fraction (s = m / 2¹⁶); the decoder rebuilds the table with
IEEE multiplications only (no ``exp``/``pow`` from a maths library), so encoder and decoder get
identical float64 tables on every platform and constriction quantizes them identically.
"""

from __future__ import annotations

import math

import numpy as np
import torch

S_BITS = 16
S_ONE = 1 << S_BITS
LIKELIHOOD_FLOOR = 1e-9
TABLE_FLOOR = 2.0**-80  # keeps −log2 p finite for symbols far in the tail during training


def bits(y: torch.Tensor, log_b: torch.Tensor) -> torch.Tensor:
    """−log2 p(y) elementwise (differentiable in ``y`` and ``log_b``); ``log_b`` broadcasts."""
    b = log_b.exp()
    a = y.abs()
    # Both ends of the bin [a − ½, a + ½] in the upper tail (a ≥ ½): p = ½(e^−(a−½)/b − e^−(a+½)/b);
    # the bin around 0 (a < ½): p = 1 − ½e^−(½−a)/b − ½e^−(a+½)/b. Two exponentials per symbol.
    near, far = torch.exp(-(a - 0.5).abs() / b), torch.exp(-(a + 0.5) / b)
    p = torch.where(a >= 0.5, 0.5 * (near - far), 1 - 0.5 * (near + far))
    return -torch.log2(p.clamp(min=LIKELIHOOD_FLOOR))


def s_code(log_b: float) -> int:
    """The 16-bit code m of s = exp(−1/(2b)) for a trained ``log_b`` (1 ≤ m ≤ 2¹⁶ − 1)."""
    s = math.exp(-0.5 * math.exp(-log_b))
    return int(min(max(round(s * S_ONE), 1), S_ONE - 1))


def log_b_of(m: int) -> float:
    """The ``log_b`` whose s is exactly m / 2¹⁶ (used to report the coded model's estimate)."""
    s = m / S_ONE
    return math.log(-0.5 / math.log(s))


def table(m: int, lo: int, hi: int) -> np.ndarray:
    """Unnormalised float64 probabilities of symbols lo … hi under s = m / 2¹⁶, bit-identical on
    every platform (sequential products of exactly representable numbers)."""
    s = m / S_ONE  # exact: m < 2^16
    radius = max(abs(lo), abs(hi))
    powers = np.empty(radius + 1, dtype=np.float64)  # powers[k] = p(±k)
    powers[0] = 1.0 - s
    tail = 0.5 * (1.0 - s * s)
    odd_power = s  # s^(2k-1) by sequential products: s, s^3, s^5, ...
    for k in range(1, radius + 1):
        powers[k] = tail * odd_power
        odd_power = odd_power * s * s
    p = powers[np.abs(np.arange(lo, hi + 1))]
    return np.maximum(p, TABLE_FLOOR)  # far tails underflow; every symbol stays codable


def model_bits(symbols: np.ndarray, m: int) -> float:
    """Ideal code length in bits of integer ``symbols`` under the coded (truncated) model."""
    s = np.asarray(symbols, dtype=np.int64).ravel()
    if s.size == 0:
        return 0.0
    lo, hi = int(s.min()), int(s.max())
    p = table(m, lo, hi)
    p = p / p.sum()
    with np.errstate(divide="ignore"):
        return float(-np.log2(p[s - lo]).sum())
