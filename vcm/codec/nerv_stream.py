"""The ``.nerv`` bitstream: a compressed NeRV that alone rebuilds the decoder (see docs/bitstream.md).

Sections: ``HEAD`` (zlib-compressed JSON: model config, video description, tensor list) and
``DATA``: the zero points of all tensors (one coded array), their bfloat16 scales, then each
weight tensor's centered symbols under its own table, then all biases as one coded array
(a few hundred values: one table for them all costs less than one each).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass

import numpy as np
import torch

from vcm.codec import container
from vcm.codec.bits import Reader, StreamError, Writer
from vcm.codec.entropy import decode_array, encode_array
from vcm.codec.groups import channels_of, group_of
from vcm.codec.quant import QTensor, bf16_bytes, bf16_from, levels
from vcm.nerv.model import ACTIVATIONS, NeRV, NervConfig, count_params

COLOUR = "RGB output; YUV sources were converted with BT.601 limited range (vcm.video.color)"
MAGIC = b"VCMN"
VERSION = 1
LIMITS = {"side": 16384, "frames": 1_000_000, "params": 1 << 27, "width_channels": 1 << 16,
          "stem_layers": 8, "stages": 8, "embed_levels": 1024, "header_bytes": 1 << 20}


@dataclass
class NervStream:
    """What a ``.nerv`` file holds: the model config, the video description and quantized tensors.

    ``video``: name, fps, frames, source_frames [a, b) and optionally sequence; decoding adds
    width, height and colour.
    """

    model: NervConfig
    video: dict  # name, width, height, fps, frames, source_frames, colour
    tensors: list[QTensor]

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {q.name: torch.from_numpy(q.dequantize()) for q in self.tensors}

    def build_model(self) -> NeRV:
        model = NeRV(self.model)
        model.load_state_dict(self.state_dict())
        return model.eval()


def encode(stream: NervStream) -> bytes:
    bits = {}
    for q in stream.tensors:
        bits.setdefault(group_of(q.name), q.bits)
        if bits[group_of(q.name)] != q.bits:
            raise ValueError("all tensors of a group share one bit depth")
    v = stream.video
    video = {"name": v["name"], "fps": v["fps"], "frames": v["frames"], "source_frames": v["source_frames"]}
    if v.get("sequence"):
        video["sequence"] = v["sequence"]
    header = {"model": stream.model.to_dict(), "video": video, "bits": bits}
    head = zlib.compress(json.dumps(header, separators=(",", ":"), sort_keys=True).encode(), 9)
    w = Writer()
    encode_array(np.concatenate([q.zero for q in stream.tensors]), w)
    w.raw(bf16_bytes(np.concatenate([q.scale for q in stream.tensors])))
    for q in stream.tensors:
        if group_of(q.name) != "bias":
            encode_array(q.centered, w)
    biases = [q.centered.ravel() for q in stream.tensors if group_of(q.name) == "bias"]
    if biases:
        encode_array(np.concatenate(biases), w)
    return container.pack(MAGIC, VERSION, [(b"HEAD", head), (b"DATA", w.getvalue())])


def decode(data: bytes) -> NervStream:
    """Parse and validate a ``.nerv`` stream; raises StreamError (a VcmError) on any defect."""
    sections = container.unpack(data, MAGIC, VERSION, "vcm NeRV")
    if b"HEAD" not in sections or b"DATA" not in sections:
        raise StreamError("malformed vcm NeRV bitstream (missing HEAD or DATA section)")
    header = _read_header(sections[b"HEAD"])
    cfg = _model_config(header.get("model"))
    video = _video(header.get("video"), cfg)
    names = _tensor_list(header.get("bits"), cfg)
    r = Reader(sections[b"DATA"], "tensor data")
    channels = [channels_of(n, shape, cfg) for n, shape, _ in names]
    zeros = decode_array(r, sum(channels))
    scales = bf16_from(r.array("<u2", sum(channels)))
    symbols = {n: decode_array(r, int(np.prod(shape))) for n, shape, _ in names if group_of(n) != "bias"}
    bias_names = [(n, int(np.prod(shape))) for n, shape, _ in names if group_of(n) == "bias"]
    if bias_names:
        flat = decode_array(r, sum(size for _, size in bias_names))
        offsets = np.cumsum([0] + [size for _, size in bias_names])
        symbols.update({n: flat[offsets[i]:offsets[i + 1]] for i, (n, _) in enumerate(bias_names)})
    decoded, c0 = {}, 0
    for (name, shape, bits), n_ch in zip(names, channels):
        zero, scale = zeros[c0:c0 + n_ch], scales[c0:c0 + n_ch]
        c0 += n_ch
        centered = symbols[name].reshape(n_ch, -1)
        qmax = levels(bits) - 1
        if zero.min(initial=0) < 0 or zero.max(initial=0) > qmax:
            raise StreamError(f"malformed vcm NeRV bitstream (zero point out of range in {name})")
        q = centered + zero[:, None]
        if q.min(initial=0) < 0 or q.max(initial=0) > qmax:
            raise StreamError(f"malformed vcm NeRV bitstream (symbol out of range in {name})")
        if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            raise StreamError(f"malformed vcm NeRV bitstream (bad scale in {name})")
        decoded[name] = QTensor(name, shape, bits, scale, zero.astype(np.int32), centered.astype(np.int32))
    tensors = [decoded[n] for n, _, _ in names]
    if r.remaining():
        raise StreamError("malformed vcm NeRV bitstream (trailing tensor data)")
    return NervStream(cfg, video, tensors)


def _read_header(blob: bytes) -> dict:
    try:
        d = zlib.decompressobj()
        raw = d.decompress(blob, LIMITS["header_bytes"])
        if d.unconsumed_tail:
            raise StreamError("malformed vcm NeRV bitstream (header too large)")
        header = json.loads(raw)
    except (zlib.error, ValueError, UnicodeDecodeError):
        raise StreamError("malformed vcm NeRV bitstream (unreadable header)") from None
    if not isinstance(header, dict):
        raise StreamError("malformed vcm NeRV bitstream (header is not an object)")
    return header


def _int(d: dict, key: str, lo: int, hi: int) -> int:
    v = d.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise StreamError(f"malformed vcm NeRV bitstream (header field {key!r} = {v!r} is out of range)")
    return v


def _model_config(m) -> NervConfig:
    if not isinstance(m, dict):
        raise StreamError("malformed vcm NeRV bitstream (no model description)")
    L = LIMITS
    try:
        strides = m["strides"]
        stem = m["stem_dims"]
        if not (isinstance(strides, list) and 1 <= len(strides) <= L["stages"]
                and all(isinstance(s, int) and 1 <= s <= 8 for s in strides)):
            raise StreamError("malformed vcm NeRV bitstream (strides)")
        if not (isinstance(stem, list) and len(stem) <= L["stem_layers"]
                and all(isinstance(s, int) and 1 <= s <= L["width_channels"] for s in stem)):
            raise StreamError("malformed vcm NeRV bitstream (stem widths)")
        if m.get("activation") not in ACTIVATIONS:
            raise StreamError("malformed vcm NeRV bitstream (activation)")
        for key in ("embed_base", "expansion", "reduction"):
            v = m.get(key)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 < v <= 64:
                raise StreamError(f"malformed vcm NeRV bitstream (header field {key!r})")
        cfg = NervConfig(
            height=_int(m, "height", 1, L["side"]), width=_int(m, "width", 1, L["side"]),
            strides=tuple(strides), grid_h=_int(m, "grid_h", 1, L["side"]), grid_w=_int(m, "grid_w", 1, L["side"]),
            fc_dim=_int(m, "fc_dim", 1, L["width_channels"]), stem_dims=tuple(stem),
            embed_base=float(m["embed_base"]), embed_levels=_int(m, "embed_levels", 1, L["embed_levels"]),
            expansion=float(m["expansion"]), reduction=float(m["reduction"]),
            lower_width=_int(m, "lower_width", 1, L["width_channels"]), activation=m["activation"],
        )
    except KeyError as err:
        raise StreamError(f"malformed vcm NeRV bitstream (model field {err} missing)") from None
    ph, pw = cfg.padded_size
    if ph < cfg.height or pw < cfg.width or ph > 2 * L["side"] or pw > 2 * L["side"]:
        raise StreamError("malformed vcm NeRV bitstream (grid and strides do not cover the frame)")
    if max(cfg.block_widths()) > L["width_channels"] or count_params(cfg) > L["params"]:
        raise StreamError("vcm NeRV bitstream describes an implausibly large network; refusing to build it")
    return cfg


def _video(v, cfg: NervConfig) -> dict:
    if not isinstance(v, dict):
        raise StreamError("malformed vcm NeRV bitstream (no video description)")
    frames = _int(v, "frames", 1, LIMITS["frames"])
    if not isinstance(v.get("name"), str):
        raise StreamError("malformed vcm NeRV bitstream (video name)")
    fps = v.get("fps")
    if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not 0 < fps <= 1000:
        raise StreamError("malformed vcm NeRV bitstream (fps)")
    src = v.get("source_frames")
    if not (isinstance(src, list) and len(src) == 2 and all(isinstance(s, int) for s in src) and src[1] - src[0] == frames):
        raise StreamError("malformed vcm NeRV bitstream (source frame range)")
    return {**v, "width": cfg.width, "height": cfg.height, "colour": COLOUR}


def _tensor_list(bits, cfg: NervConfig) -> list[tuple[str, tuple[int, ...], int]]:
    """(name, shape, bits) of every parameter, in the model's order; bits per tensor group."""
    if not isinstance(bits, dict):
        raise StreamError("malformed vcm NeRV bitstream (no bit depths)")
    out = []
    for name, p in _shape_model(cfg).items():
        b = bits.get(group_of(name))
        if not isinstance(b, int) or isinstance(b, bool) or not 2 <= b <= 16:
            raise StreamError(f"malformed vcm NeRV bitstream (bit depth of {name})")
        out.append((name, tuple(p.shape), b))
    return out


def _shape_model(cfg: NervConfig) -> dict:
    """Parameter shapes without allocating them (meta device)."""
    with torch.device("meta"):
        return dict(NeRV(cfg).named_parameters())
