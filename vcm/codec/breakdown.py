"""Where a ``.nerv`` stream's bytes go: per part of the network, with bits per parameter.

Parts (a representation names its parameters' parts with ``stream_part``): HiNeRV's ``base grids``
and ``local grids``, ``weights`` (convolutions and linears), ``biases/norms``; then ``side
information`` (quantization steps and the entropy models' parameters; the paper's pipeline's ranges,
scales and code tables) and ``header`` (the network's
shape, the video's description and the container's framing). The ANS stream codes all tensors
together, so each tensor's share of it is its information content under its own model, scaled to
the payload's real size (the two differ by the coder's flush, a few bytes). The paper's pipeline codes
each tensor under a table of its own, so there each part's bytes are its tensors' coded words exactly.
The parts sum to the file size exactly.
"""

from __future__ import annotations

import numpy as np

from vcm.codec.rd_coding import RDTensor, code_bits
from vcm.nerv import registry

SIDE = "side information"
HEADER = "header"


def stream_breakdown(stream, encoded) -> list[dict]:
    """The rows of a written stream (``NervStream``, and the ``Encoded`` its file came from), either coding."""
    if stream.coding == "rd":
        return rd_breakdown(stream.arch, stream.tensors, len(encoded.data), encoded.data_bytes,
                            encoded.entropy_coded_bytes)
    return affine_breakdown(stream.arch, stream.tensors, encoded.part_bytes, len(encoded.data), encoded.data_bytes)


def rd_breakdown(arch: str, tensors: list[RDTensor], file_bytes: int, data_bytes: int, payload_bytes: int) -> list[dict]:
    """Rows ``{part, bytes, params, bits_per_param, share}`` of an rd-coded stream, in the order parts
    first appear, then side information and header. ``data_bytes``: the DATA section; ``payload_bytes``:
    its ANS words."""
    part_of = registry.entry(arch).model_cls.stream_part
    bits: dict[str, float] = {}
    params: dict[str, int] = {}
    for t in tensors:
        part = part_of(t.name)
        bits[part] = bits.get(part, 0.0) + code_bits(t)
        params[part] = params.get(part, 0) + int(t.symbols.size)
    total_bits = sum(bits.values())
    scale = 8 * payload_bytes / total_bits if total_bits else 0.0
    parts = {part: b * scale / 8 for part, b in bits.items()}
    # nothing but constant tensors: the (empty) payload is the flush alone, counted as side information
    return _rows(parts, params, data_bytes - payload_bytes * bool(total_bits), file_bytes - data_bytes, file_bytes)


def affine_breakdown(arch: str, tensors, part_bytes: dict[str, int], file_bytes: int, data_bytes: int) -> list[dict]:
    """The same rows for a stream of the paper's pipeline, whose tensors (``QTensor``) are coded each under its own
    table (the biases as one array): ``part_bytes``, each part's ANS words, as the writer counted them; the
    quantization ranges, scales and code tables are the side information."""
    part_of = registry.entry(arch).model_cls.stream_part
    params: dict[str, int] = {}
    for q in tensors:
        params[part_of(q.name)] = params.get(part_of(q.name), 0) + int(np.prod(q.shape))
    parts = {part: float(part_bytes.get(part, 0)) for part in params}
    return _rows(parts, params, data_bytes - sum(part_bytes.values()), file_bytes - data_bytes, file_bytes)


def _rows(parts: dict[str, float], params: dict[str, int], side: float, header: float, file_bytes: int) -> list[dict]:
    rows = [{"part": part, "bytes": b, "params": params[part]} for part, b in parts.items()]
    rows.append({"part": SIDE, "bytes": float(side), "params": 0})
    rows.append({"part": HEADER, "bytes": float(header), "params": 0})
    for row in rows:
        row["bytes"] = round(row["bytes"], 1)
        row["bits_per_param"] = round(8 * row["bytes"] / row["params"], 3) if row["params"] else None
        row["share"] = round(row["bytes"] / file_bytes, 4) if file_bytes else 0.0
    return rows


def part_text(row: dict) -> str:
    """One part as the tables show it: ``25,300 bytes (94.1 %, 4.12 bits/param)``."""
    per = f", {row['bits_per_param']:.2f} bits/param" if row.get("bits_per_param") is not None else ""
    return f"{row['bytes']:,.0f} bytes ({100 * row['share']:.1f} %{per})"
