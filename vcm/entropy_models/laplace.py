"""Discretised zero-mean Laplace entropy model: the density rate–distortion training learns and the
``.nerv`` v2 stream codes with.

For symbols y (integers after rounding, real with additive uniform noise) and a Laplace of scale
b > 0 (in symbol units), the mass of the unit bin around y is

    p(y) = F(y + ½) − F(y − ½),   F the Laplace CDF,

which at integers is a two-sided geometric law with ratio θ = s², s = exp(−1 / (2b)):

    p(0) = 1 − s,   p(q) = ½ (1 − s²) · s^(2|q| − 1)   (q ≠ 0).

The stream stores s as a 16-bit fraction (s = m / 2¹⁶): up to format version 4 as the 16 bits
themselves, from version 5 as an 8-bit code c (:func:`m_of_code`), one of 248 values of m spaced an
eighth of an octave apart in s for narrow laws and in 1 − s for wide ones. The decoder rebuilds the
table with IEEE multiplications only (no ``exp``/``pow`` from a maths library), so encoder and
decoder get identical float64 tables on every platform and constriction quantizes them identically.
"""

from __future__ import annotations

import math

import numpy as np
import torch

S_BITS = 16
S_ONE = 1 << S_BITS
LIKELIHOOD_FLOOR = 1e-9
TABLE_FLOOR = 2.0**-80  # keeps −log2 p finite for symbols far in the tail during training
# 2^(j/8), j = 0 … 7, as float literals (parsed exactly everywhere): with ldexp, every 2^(e/8) is exact.
EIGHTH_ROOTS = (1.0, 1.0905077326652577, 1.189207115002721, 1.2968395546510096, 1.4142135623730951,
                1.5422108254079407, 1.681792830507429, 1.8340080864093424)
CODES = 248  # 8-bit Laplace codes c = 0 … 247 (format version 5); 248 … 255 are malformed
_NARROW = 120  # codes below this place s itself; from it on, 1 − s


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


def _pow2_eighths(e: int) -> float:
    """2^(e/8), exact: a literal root times a power of two."""
    return math.ldexp(EIGHTH_ROOTS[e % 8], e // 8)


def m_of_code(c: int) -> int:
    """The 16-bit m of the 8-bit code c (0 ≤ c < ``CODES``): m = ⌊2^(c/8)⌋ for c < 120 (s from 2⁻¹⁶
    to 0.46), else m = 2¹⁶ − ⌈2^((240 − c)/8)⌉ (1 − s from ½ down to 2⁻¹⁶); always 1 ≤ m < 2¹⁶."""
    if not 0 <= c < CODES:
        raise ValueError(f"Laplace code {c} out of range")
    if c < _NARROW:
        return max(1, math.floor(_pow2_eighths(c)))
    return S_ONE - math.ceil(_pow2_eighths(240 - c))


M_OF_CODE = tuple(m_of_code(c) for c in range(CODES))
CODE_OF_M = {m: c for c, m in reversed(list(enumerate(M_OF_CODE)))}  # the smallest code of each m


def histogram_bits(counts: np.ndarray, m: int, lo: int, hi: int) -> float:
    """Code length in bits of symbols lo … hi occurring ``counts`` times under the coded model m."""
    used = counts > 0
    p = table(int(m), lo, hi)
    return float(-(counts[used] * np.log2(p[used] / p.sum())).sum())


def best_code(counts: np.ndarray, lo: int, hi: int) -> tuple[int, float]:
    """The m among the 8-bit codes' with the fewest bits for a histogram over lo … hi, and those bits:
    every fourth code, then the three either side of the best (code length is near-unimodal in c)."""
    def bits(c: int) -> float:
        return histogram_bits(counts, M_OF_CODE[c], lo, hi)

    b, c = min((bits(c), c) for c in range(0, CODES, 4))
    b, c = min([(b, c)] + [(bits(k), k) for k in range(max(c - 3, 0), min(c + 4, CODES)) if k != c])
    return M_OF_CODE[c], b


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
