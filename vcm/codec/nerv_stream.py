"""The ``.nerv`` bitstream: a compressed representation that alone rebuilds the decoder
(see docs/bitstream.md).

Sections: ``HEAD`` (zlib-compressed JSON: representation name and config, video description,
coding) and ``DATA``, whose layout depends on the coding:

- ``affine`` (the paper's pipeline): zero points of all tensors (one coded array), their
  bfloat16 scales, each weight tensor's centered symbols under its own table, then all biases as
  one coded array;
- ``rd`` (rate–distortion method, format version 2): see :mod:`vcm.codec.rd_coding`.

From version 3, ``DATA`` starts with the parameter count of the network it was coded for (a
varint), checked against the header's network. Versions 2 and 3 differ in nothing else. Version 4
(``rd`` only) compresses the header with a preset dictionary (``HEADER_DICT``), codes the step codes
against a base per tensor, and lets each grid choose the causal context model
(:mod:`vcm.entropy_models.context`). Version 5 (``rd`` only) bit-packs the tensors' records and
writes each Laplace law as an 8-bit code the encoder chooses. Version 6 (``rd`` only) adds the context
model's wave form (left and earlier-frame neighbours, decoded in waves), one bit naming each grid's model.

Version 1 streams (NeRV, affine, no ``arch``/``coding`` in the header) are still written for the
paper's pipeline on NeRV, byte for byte as before, and every version-1 stream still decodes.
"""

from __future__ import annotations

import math

from dataclasses import dataclass

import numpy as np
import torch

from vcm.bitstream import container
from vcm.bitstream.bits import Reader, StreamError, Writer
from vcm.bitstream.decode_plan import DecodePlan
from vcm.codec import rd_coding
from vcm.codec.entropy import decode_array, encode_array
from vcm.codec.quant import QTensor, bf16_bytes, bf16_from, levels
from vcm.nerv import registry
from vcm.nerv.limits import LIMITS, checked_config

COLOUR = "RGB output; YUV sources were converted with BT.601 limited range (vcm.video.color)"
MAGIC = container.NERV_MAGIC
VERSION = rd_coding.LATEST  # 6: only the rd layout has moved since version 3
CODINGS = ("affine", "rd")
# Version 4 compresses its header with this preset dictionary: typical NeRV and HiNeRV headers, so that
# the keys and the usual values cost a few bits each instead of ~250 bytes a stream. Part of the format:
# a change to it is a new version.
HEADER_DICT = (
    b'{"arch":"nerv","coding":"rd","model":{"activation":"silu","embed_base":1.25,"embed_levels":80,'
    b'"expansion":1.0,"fc_dim":7,"grid_h":9,"grid_w":11,"height":144,"lower_width":10,"reduction":2.0,'
    b'"stem_dims":[55],"strides":[2,2,2,2],"width":176},"video":{"fps":29.97002997002997,"frames":120,'
    b'"name":"","sequence":"","source_frames":[0,120]}}'
    b'{"arch":"hinerv","coding":"rd","model":{"channels":[44,33,22,11],"depths":[2,2,1,0],"expansion":2.0,'
    b'"grid_channels":5,"grid_frames":12,"grid_h":15,"grid_levels":2,"grid_w":26,"head":"pointwise",'
    b'"height":240,"kernel":3,"local_frames":6,"shots":[30,18],"strides":[2,2,2,2],"width":416},'
    b'"temporal":["grids.0","grids.1","stages.0.local","stages.1.local","stages.2.local","stages.3.local"],'
    b'"video":{"fps":25.0,"frames":48,"name":"","source_frames":[0,48]}}'
)


@dataclass
class NervStream:
    """What a ``.nerv`` file holds: representation config, video description and coded tensors.

    ``video``: name, fps, frames, source_frames [a, b) and optionally sequence; decoding adds
    width, height and colour. ``tensors``: ``QTensor`` (coding affine) or ``RDTensor`` (rd).
    """

    model: object  # the representation's config
    video: dict
    tensors: list
    arch: str = "nerv"
    coding: str = "affine"

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {q.name: torch.from_numpy(q.dequantize()) for q in self.tensors}

    def plan(self, stream_bytes: int, frames: range | None = None, name: str = "this stream") -> DecodePlan:
        """The cost of decoding ``frames`` (default: all) of this stream of ``stream_bytes`` bytes."""
        count = len(frames) if frames is not None else self.video["frames"]
        return decode_plan(self.arch, self.model, count, stream_bytes, name)

    def param_count(self) -> int:
        """Parameters the stream codes (pruned ones included)."""
        return int(sum(math.prod(t.shape) for t in self.tensors))

    def kmac_per_pixel(self, width: int, height: int) -> float:
        """Multiply–accumulates of the decoder per pixel of a ``width``×``height`` frame, in thousands (3 decimals)."""
        return registry.kmac_per_pixel(self.arch, self.model, width, height)

    def build_model(self) -> torch.nn.Module:
        model = registry.create_representation(self.arch, self.model)
        model.load_state_dict(self.state_dict(), strict=False)
        return model.eval()


@dataclass(frozen=True)
class Encoded:
    """A written stream and the sizes the byte breakdown needs."""

    data: bytes  # the whole file
    data_bytes: int  # its DATA section
    entropy_coded_bytes: int  # its ANS payload (the rest of the DATA section is side information)
    part_bytes: dict[str, int] | None = None  # the paper pipeline's payload per part (stream_part); rd: None


def encode(stream: NervStream) -> Encoded:
    """The stream's bytes, with the sizes of its DATA section and of its entropy-coded payload."""
    v = stream.video
    video = {"name": v["name"], "fps": v["fps"], "frames": v["frames"], "source_frames": v["source_frames"]}
    if v.get("sequence"):
        video["sequence"] = v["sequence"]
    header = {"model": stream.model.to_dict(), "video": video}
    if stream.coding == "rd":
        version = VERSION
    else:  # the paper's pipeline writes the layout it always wrote: version 1 on NeRV, 3 elsewhere
        version = 1 if stream.arch == "nerv" else 3
    if version >= 2:
        header.update(arch=stream.arch, coding=stream.coding)
    w = Writer()
    if version >= 3:  # binds the header's network to the data: a header edit that reshapes it is refused
        w.varint(sum(int(np.prod(q.shape)) for q in stream.tensors))
    parts = None
    if stream.coding == "affine":
        header["bits"], parts = _write_affine(stream, w)
        coded = sum(parts.values())
    elif stream.coding == "rd":
        coded = rd_coding.write(stream.tensors, w, version)
        temporal = [t.name for t in stream.tensors if t.temporal]
        if temporal:
            header["temporal"] = temporal
    else:
        raise ValueError(f"unknown coding {stream.coding!r}")
    head = container.pack_header(header, HEADER_DICT if version >= 4 else None)
    data = container.pack(MAGIC, version, [(b"HEAD", head), (b"DATA", w.getvalue())])
    return Encoded(data, len(w.getvalue()), coded, parts)


def _write_affine(stream: NervStream, w: Writer) -> tuple[dict, dict[str, int]]:
    """Affine-coded tensors into ``w`` → (the bit depth per tensor group, the ANS payload's bytes per part of
    the network, as :mod:`vcm.codec.breakdown` names them; the ranges, scales and code tables are the rest)."""
    model_cls = registry.entry(stream.arch).model_cls
    group_of = model_cls.param_group
    bits = {}
    for q in stream.tensors:
        bits.setdefault(group_of(q.name), q.bits)
        if bits[group_of(q.name)] != q.bits:
            raise ValueError("all tensors of a group share one bit depth")
    encode_array(np.concatenate([q.zero for q in stream.tensors]), w)
    w.raw(bf16_bytes(np.concatenate([q.scale for q in stream.tensors])))
    parts: dict[str, int] = {}
    for q in stream.tensors:
        if group_of(q.name) != "bias":
            part = model_cls.stream_part(q.name)
            parts[part] = parts.get(part, 0) + encode_array(q.centered, w)
    biases = [q for q in stream.tensors if group_of(q.name) == "bias"]
    if biases:  # one array: every bias tensor is of the same part
        part = model_cls.stream_part(biases[0].name)
        parts[part] = parts.get(part, 0) + encode_array(np.concatenate([q.centered.ravel() for q in biases]), w)
    return bits, parts


def decode(data: bytes, allow_large: bool = False) -> NervStream:
    """Parse and validate a ``.nerv`` stream; raises StreamError (a VcmError) on any defect, and on
    a frame count or decoding work out of proportion to the stream's size unless ``allow_large``
    (see :mod:`vcm.bitstream.decode_plan`; the caller then checks its own plan)."""
    sections = container.unpack(data, MAGIC, VERSION, "vcm NeRV")
    version = data[4]
    if b"HEAD" not in sections or b"DATA" not in sections:
        raise StreamError("malformed vcm NeRV bitstream (missing HEAD or DATA section)")
    header = _read_header(sections[b"HEAD"], version)
    unknown = set(header) - (HEADER_KEYS_V1 if version == 1 else HEADER_KEYS)
    if unknown:
        raise StreamError(f"malformed vcm NeRV bitstream (unknown header field {sorted(unknown)[0][:40]!r})")
    if version == 1:
        arch, coding = "nerv", "affine"
    else:
        arch, coding = header.get("arch"), header.get("coding")
        if not isinstance(arch, str):
            raise StreamError("malformed vcm NeRV bitstream (no representation named)")
        if arch not in registry.names():  # a lab's own, not installed here, or damage
            raise StreamError(f"this vcm NeRV bitstream needs the representation {arch[:40]!r}, which is not "
                              f"installed; known: {registry.known()}")
        if coding not in CODINGS:
            raise StreamError("malformed vcm NeRV bitstream (unknown coding)")
    cfg, model_cls = _model_config(arch, header.get("model"))
    video = _video(header.get("video"), cfg)
    check_memory(arch, cfg)
    if not allow_large:  # before any tensor is decoded: a refusal costs nothing
        decode_plan(arch, cfg, video["frames"], len(data)).check()
    shapes = _shape_model(arch, cfg)
    temporal = _temporal_names(header.get("temporal", []), coding, dict(shapes), arch, cfg)
    layout = [(n, shape, 1 if n in temporal else model_cls.quant_channels_of(cfg, n, shape)) for n, shape in shapes]
    r = Reader(sections[b"DATA"], "tensor data")
    if version >= 3:
        coded, declared = r.varint(LIMITS["params"]), sum(int(np.prod(shape)) for _, shape, _ in layout)
        if coded != declared:
            raise StreamError(f"malformed vcm NeRV bitstream (the header declares {declared:,} parameters, the "
                              f"data was coded for {coded:,})")
    if coding == "affine":
        tensors = _read_affine(r, layout, header.get("bits"), model_cls.param_group)
    else:
        tensors = rd_coding.read(r, layout, temporal, version)
    if r.remaining():
        raise StreamError("malformed vcm NeRV bitstream (trailing tensor data)")
    return NervStream(cfg, video, tensors, arch, coding)


# No floor of bytes per parameter: the ANS coder writes a run of a model's first symbol at the end of its
# stack in no words at all, and a HiNeRV fitted for 3 steps and coded at λ 1 came to 76,104 parameters in
# 91 bytes of tensor data, so the bytes present do not bound the symbols a stream may declare. Fixed-size
# fields (scales, step codes, records) are read against the bytes present; the memory budget bounds the
# decoder's work; and every entropy-coded array must be exactly what the encoder writes for its symbols.
# Per parameter while decoding: int64 symbols, float32 weights, the network's own copy and slack.
BYTES_PER_PARAM = 24


def decode_plan(arch: str, cfg, frames: int, stream_bytes: int, name: str = "this stream") -> DecodePlan:
    """What decoding ``frames`` frames of representation ``arch`` with ``cfg`` costs."""
    macs = registry.entry(arch).model_cls.frame_macs(cfg)
    return DecodePlan("vcm NeRV", name, frames, cfg.width, cfg.height, stream_bytes, macs)


def check_memory(arch: str, cfg) -> None:
    """Refuse a stream whose decoding (parameters + one frame) would exceed the memory budget."""
    from vcm.bitstream import budget

    params = registry.entry(arch).model_cls.count_params(cfg)
    need = BYTES_PER_PARAM * params + registry.frame_memory(arch, cfg)
    budget.check(need, f"{params:,} parameters, {cfg.width}x{cfg.height} frames", "vcm NeRV")


def _read_affine(r: Reader, layout, bits, group_of) -> list[QTensor]:
    if not isinstance(bits, dict):
        raise StreamError("malformed vcm NeRV bitstream (no bit depths)")
    if set(bits) - {group_of(name) for name, _, _ in layout}:
        raise StreamError("malformed vcm NeRV bitstream (bit depth of an unknown tensor group)")
    names = []
    for name, shape, channels in layout:
        b = bits.get(group_of(name))
        if not isinstance(b, int) or isinstance(b, bool) or not 2 <= b <= 16:
            raise StreamError(f"malformed vcm NeRV bitstream (bit depth of {name})")
        names.append((name, shape, b, channels))
    zeros = decode_array(r, sum(c for *_, c in names))
    scales = bf16_from(r.array("<u2", sum(c for *_, c in names)))
    symbols = {n: decode_array(r, int(np.prod(shape))) for n, shape, _, _ in names if group_of(n) != "bias"}
    bias_names = [(n, int(np.prod(shape))) for n, shape, _, _ in names if group_of(n) == "bias"]
    if bias_names:
        flat = decode_array(r, sum(size for _, size in bias_names))
        offsets = np.cumsum([0] + [size for _, size in bias_names])
        symbols.update({n: flat[offsets[i]:offsets[i + 1]] for i, (n, _) in enumerate(bias_names)})
    tensors, c0 = [], 0
    for name, shape, bits_n, n_ch in names:
        zero, scale = zeros[c0:c0 + n_ch], scales[c0:c0 + n_ch]
        c0 += n_ch
        centered = symbols[name].reshape(n_ch, -1)
        qmax = levels(bits_n) - 1
        if zero.min(initial=0) < 0 or zero.max(initial=0) > qmax:
            raise StreamError(f"malformed vcm NeRV bitstream (zero point out of range in {name})")
        q = centered + zero[:, None]
        if q.min(initial=0) < 0 or q.max(initial=0) > qmax:
            raise StreamError(f"malformed vcm NeRV bitstream (symbol out of range in {name})")
        if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            raise StreamError(f"malformed vcm NeRV bitstream (bad scale in {name})")
        tensors.append(QTensor(name, shape, bits_n, scale, zero.astype(np.int32), centered.astype(np.int32)))
    return tensors


def peek_video(data: bytes) -> dict:
    """The ``video`` description of a stream from its checked container and header only (no tensor
    is decoded; :func:`decode` validates the rest)."""
    sections = container.unpack(data, MAGIC, VERSION, "vcm NeRV")
    video = _read_header(sections.get(b"HEAD", b""), data[4]).get("video")
    if not isinstance(video, dict) or not isinstance(video.get("name"), str):
        raise StreamError("malformed vcm NeRV bitstream (no video description)")
    return video


HEADER_KEYS_V1 = {"model", "video", "bits"}
HEADER_KEYS = HEADER_KEYS_V1 | {"arch", "coding", "temporal"}
VIDEO_KEYS = {"name", "fps", "frames", "source_frames", "sequence"}


def _read_header(blob: bytes, version: int) -> dict:
    return container.read_header(blob, "vcm NeRV", HEADER_DICT if version >= 4 else None)


def _temporal_names(value, coding: str, shapes: dict, arch: str, cfg) -> frozenset[str]:
    """The header's ``temporal`` list, rd coding only: empty (every tensor coded flat), or exactly the
    tensors the encoder codes along time — those the representation marks temporal with 2+ slices
    along their first axis. Any other list would decode the same symbols to other weights."""
    if not (isinstance(value, list) and (coding == "rd" or not value) and all(isinstance(n, str) for n in value)
            and len(set(value)) == len(value)):
        raise StreamError("malformed vcm NeRV bitstream (temporal tensors)")
    temporal_of = registry.entry(arch).model_cls.temporal_of
    canonical = {n for n, shape in shapes.items() if len(shape) >= 2 and shape[0] >= 2 and temporal_of(cfg, n, shape)}
    if value and set(value) != canonical:
        raise StreamError("malformed vcm NeRV bitstream (the temporal tensors are not the representation's)")
    return frozenset(value)


def _int(d: dict, key: str, lo: int, hi: int) -> int:
    v = d.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise StreamError(f"malformed vcm NeRV bitstream (header field {key!r} = {v!r} is out of range)")
    return v


def _model_config(arch: str, m):
    """The representation's config from the header: strictly typed, then checked against its limits."""
    if not isinstance(m, dict):
        raise StreamError("malformed vcm NeRV bitstream (no model description)")
    try:
        cfg = checked_config(arch, m)
    except (ValueError, TypeError, OverflowError) as err:
        raise StreamError(f"malformed vcm NeRV bitstream (model: {str(err)[:120]})") from None
    return cfg, registry.entry(arch).model_cls


def _video(v, cfg) -> dict:
    if not isinstance(v, dict):
        raise StreamError("malformed vcm NeRV bitstream (no video description)")
    if set(v) - VIDEO_KEYS:
        raise StreamError("malformed vcm NeRV bitstream (unknown video field)")
    if v.get("sequence") is not None and not (isinstance(v["sequence"], str) and len(v["sequence"]) <= 256):
        raise StreamError("malformed vcm NeRV bitstream (video sequence)")
    frames = _int(v, "frames", 1, LIMITS["frames"])
    if not (isinstance(v.get("name"), str) and len(v["name"]) <= 256):  # a file's stem: at most 255 characters
        raise StreamError("malformed vcm NeRV bitstream (video name)")
    fps = v.get("fps")
    if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not 0 < fps <= 1000:
        raise StreamError("malformed vcm NeRV bitstream (fps)")
    src = v.get("source_frames")
    if not (container.valid_source_range(src) and src[1] - src[0] == frames):
        raise StreamError("malformed vcm NeRV bitstream (source frame range)")
    return {**v, "width": cfg.width, "height": cfg.height, "colour": COLOUR}


def _shape_model(arch: str, cfg) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of every parameter in model order, without allocating them (meta device)."""
    with torch.device("meta"):
        return [(n, tuple(p.shape)) for n, p in registry.create_representation(arch, cfg).named_parameters()]
