"""Strings that CompressAI's native rANS decoder cannot read past.

CompressAI's decoder (``RansDecoder.decode_with_indexes`` / ``decode_stream``, a 64-bit rANS
state fed 32-bit words) takes a symbol count from the caller and reads words for as long as its
state asks, with no check against the end of the string. A stream that declares larger latents
than its strings hold therefore makes it read past them (a crash, or garbage from whatever lies
in memory). Here every string is padded with zero words up to a proven bound on what decoding
``n`` symbols can consume, so every read stays inside the buffer and a forged size decodes to
something (a legitimate string is decoded exactly as before: rANS stops at its own last word).

The bound, from the decoder's source (CompressAI 1.2.x, ``rans_interface.cpp`` / ``rans64.h``):

- the state x stays in [2³¹, 2⁶⁴); a word is read only when a step leaves x < 2³¹, and adds 32
  bits to it; initialisation reads 2 words;
- a symbol step (``Rans64DecAdvance``) removes at most 16 bits (precision 16, frequency ≥ 1); a
  bypass read (``Rans64DecGetBits``) removes exactly 4;
- so words read ≤ 2 + 1 + (16·n + 4·g) / 32, with g the bypass reads;
- per symbol that escapes its table, the bypass loop reads nibbles while they equal 15 (W of
  them), then n_bypass ≤ 15·(W + 1) more, so g ≤ Σ 16·(W + 1); within one loop a word is read
  after at most 9 nibbles, and a zero padding word ends the run at once, so ΣW ≤ 9·n + 8·S_w
  (S_w: words of the real string, each consumed once);
- hence g ≤ 160·n + 128·S_w and words ≤ 3 + 20.5·n + 16·S_w + 2.
"""

from __future__ import annotations

WORD = 4


def padded_bytes(string_bytes: int, symbols: int) -> int:
    """Bytes of a string of ``string_bytes`` once padded for a decode of ``symbols`` symbols."""
    string_words = -(-string_bytes // WORD)
    return WORD * (5 + (41 * symbols + 1) // 2 + 16 * string_words)


def pad(string: bytes, symbols: int) -> bytes:
    """``string`` followed by zero words, as many as decoding ``symbols`` symbols could read."""
    return string + bytes(padded_bytes(len(string), symbols) - len(string))
