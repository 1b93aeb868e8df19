"""How many bytes a fitted NeRV costs under different weight codings, for the same reconstruction.

    uv run python benchmarks/entropy_coding.py runs/latest --prune 0.4 --bits 8

Rows (all but float16 describe the same quantized symbols, so the same decoded frames):
- dense float16:   2 bytes per parameter
- dense b-bit:     fixed-length b-bit symbols + per-channel scale (f32) and zero point (u16)
- NeRV Huffman (reported): the reference code's estimate — Huffman bits of the non-zero
  symbols only, ignoring where they are and the side information
- NeRV Huffman + mask: the same plus 1 bit per parameter for the sparsity mask it ignores,
  plus the side information (what a decoder would actually need)
- vcm (constriction): the real .nerv file, header and checksums included
Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import heapq
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from _common import print_table, run

from vcm.codec import nerv_stream
from vcm.codec.compress import CompressOptions, compress_run


def huffman_bits(symbols: np.ndarray) -> int:
    """Total bits of an optimal prefix code for ``symbols`` (their own histogram)."""
    counts = Counter(symbols.tolist())
    if len(counts) <= 1:
        return len(symbols)
    heap = [(c, i, 0) for i, c in enumerate(counts.values())]  # (weight, tiebreak, cost so far)
    heapq.heapify(heap)
    total, uid = 0, len(heap)
    while len(heap) > 1:
        a, b = heapq.heappop(heap), heapq.heappop(heap)
        total += a[0] + b[0]  # every merge adds one bit to each symbol below it
        heapq.heappush(heap, (a[0] + b[0], uid, 0))
        uid += 1
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", nargs="?", default="runs/latest")
    ap.add_argument("--prune", type=float, default=0.4)
    ap.add_argument("--bits", type=int, default=8)
    ap.add_argument("--finetune-epochs", type=int, default=0)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.nerv"
        report = compress_run(Path(args.run), out, CompressOptions(prune=args.prune, bits=args.bits,
                                                                   finetune_epochs=args.finetune_epochs), torch.device("cpu"))
        data = out.read_bytes()
    t1 = time.perf_counter()
    stream = nerv_stream.decode(data)
    decode_parse = time.perf_counter() - t1
    t2 = time.perf_counter()
    nerv_stream.encode(stream)
    encode_only = time.perf_counter() - t2

    params = sum(int(np.prod(q.shape)) for q in stream.tensors)
    channels = sum(q.scale.size for q in stream.tensors)
    side = channels * (4 + 2)
    dense = sum(-(-int(np.prod(q.shape)) * q.bits // 8) for q in stream.tensors) + side
    symbols = [q.centered.ravel() for q in stream.tensors]
    nonzero = np.concatenate([s[s != 0] for s in symbols])
    huff = sum(huffman_bits(s[s != 0]) for s in symbols) // 8
    huff_mask = huff + -(-params // 8) + side

    rows = [
        ("dense float16", 2 * params, "–"),
        (f"dense {args.bits}-bit + side info", dense, "same"),
        ("NeRV Huffman (as the reference reports)", huff, "same (mask not counted)"),
        ("NeRV Huffman + sparsity mask + side info", huff_mask, "same"),
        ("vcm .nerv (constriction ANS)", len(data), "same"),
    ]
    print_table(f"Weight coding of {report['sequence']}: {params:,} params, {len(nonzero):,} non-zero, "
                f"prune {args.prune:.0%}, {args.bits} bits",
                ["coding", "bytes", "bits/param", "kbps", "reconstruction"],
                [[name, f"{size:,}", f"{8 * size / params:.3f}",
                  f"{size * 8 * report['fps'] / (1000 * report['frames']):.2f}", recon] for name, size, recon in rows])
    print(f"vcm stream: entropy encode {1000 * encode_only:.1f} ms, parse + entropy decode "
                  f"{1000 * decode_parse:.1f} ms; decoded PSNR {report['psnr']:.2f} dB")


if __name__ == "__main__":
    run(main)
