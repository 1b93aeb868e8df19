"""The ``.icm`` bitstream: every frame coded independently by a learned image codec (SA-ICM).

Container (see vcm/bitstream/container.py) with magic ``VCMI``:
- ``HEAD``: zlib JSON — name, sequence, width, height, fps, frames, source_frames, arch, config,
  checkpoint fingerprint, padding multiple;
- ``DATA``: per frame, the latent shape (two varints), the number of strings, and each rANS
  string (varint length + bytes).
Frames are padded (zeros, centred, as the TCM evaluation does) to the network's multiple and
cropped back. The decoder rebuilds the network from the same checkpoint (checked by fingerprint).
"""

from __future__ import annotations

import json
import time
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vcm import progress
from vcm.bitstream import container
from vcm.bitstream.bits import Reader, StreamError, Writer
from vcm.errors import VcmError
from vcm.fsutil import write_bytes
from vcm.icm.models import fingerprint, load_checkpoint, pad_multiple

MAGIC, VERSION = b"VCMI", 1


def _pad(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    pads = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
    return F.pad(x, pads), pads


def _crop(x: torch.Tensor, pads, h: int, w: int) -> torch.Tensor:
    return x[..., pads[2]:pads[2] + h, pads[0]:pads[0] + w]


def to_u8(x_hat: torch.Tensor) -> np.ndarray:
    return torch.round(x_hat.clamp(0, 1) * 255).to(torch.uint8).cpu().numpy()


def encode_frames(model, frames_u8: np.ndarray, device) -> tuple[bytes, np.ndarray]:
    """(DATA payload, the encoder's own reconstruction ``uint8 [T,3,H,W]``)."""
    w = Writer()
    recon = []
    mult = pad_multiple(model)
    with progress.progress("icm encode", len(frames_u8)) as bar:
        for frame in frames_u8:
            x = torch.from_numpy(frame).float().div(255).unsqueeze(0).to(device)
            xp, pads = _pad(x, mult)
            out = model.compress(xp)
            w.varint(int(out["shape"][0]))
            w.varint(int(out["shape"][1]))
            w.varint(len(out["strings"]))
            for s in out["strings"]:
                w.varint(len(s[0]))
                w.raw(s[0])
            if "x_hat" in out:
                recon.append(to_u8(_crop(out["x_hat"], pads, *frame.shape[1:]))[0])
            bar.advance(1)
    return w.getvalue(), (np.stack(recon) if recon else None)


def encode_video(video, checkpoint: Path, out: Path, device, arch: str | None = None) -> dict:
    """Code every frame of ``video`` into ``out`` (.icm); returns a summary with bytes and time."""
    start = time.time()
    model, arch, config = load_checkpoint(checkpoint, arch, device)
    data, _ = encode_frames(model, video.frames_u8, device)
    seq = video.info.sequence
    header = {"name": video.name, "sequence": seq.name if seq else None, "width": video.width, "height": video.height,
              "fps": video.fps, "frames": video.num_frames,
              "source_frames": [video.source_frames.start, video.source_frames.stop], "arch": arch, "config": config,
              "checkpoint": Path(checkpoint).name, "checkpoint_fingerprint": fingerprint(Path(checkpoint))}
    head = zlib.compress(json.dumps(header, sort_keys=True, separators=(",", ":")).encode(), 9)
    blob = container.pack(MAGIC, VERSION, [(b"HEAD", head), (b"DATA", data)])
    write_bytes(out, blob)
    return {"bitstream": str(out), "bytes": len(blob), "seconds": time.time() - start, "frames": video.num_frames}


def read_header(data: bytes) -> tuple[dict, bytes]:
    sections = container.unpack(data, MAGIC, VERSION, "vcm ICM")
    if b"HEAD" not in sections or b"DATA" not in sections:
        raise StreamError("malformed vcm ICM bitstream (missing HEAD or DATA)")
    try:
        header = json.loads(zlib.decompress(sections[b"HEAD"]))
    except (zlib.error, ValueError):
        raise StreamError("malformed vcm ICM bitstream (unreadable header)") from None
    for key in ("width", "height", "frames"):
        if not isinstance(header.get(key), int) or not 0 < header[key] <= 1_000_000:
            raise StreamError(f"malformed vcm ICM bitstream (header field {key!r})")
    return header, sections[b"DATA"]


def decode_icm_file(path: Path, device, checkpoint: Path | None = None) -> tuple[np.ndarray, dict]:
    """Decode a ``.icm`` file → (``uint8 [T,3,H,W]``, header). The checkpoint is looked up beside it."""
    path = Path(path)
    if not path.is_file():
        raise VcmError(f"{path} does not exist")
    header, data = read_header(path.read_bytes())
    ckpt = Path(checkpoint) if checkpoint else path.parent / header["checkpoint"]
    if not ckpt.is_file():
        raise VcmError(f"{path.name} was coded with {header['checkpoint']}; pass --checkpoint PATH to it")
    if fingerprint(ckpt) != header["checkpoint_fingerprint"]:
        raise VcmError(f"{ckpt.name} is not the checkpoint {path.name} was coded with (fingerprint differs)")
    model, _, _ = load_checkpoint(ckpt, header["arch"], device)
    h, w = header["height"], header["width"]
    mult = pad_multiple(model)
    r = Reader(data, "frame data")
    frames = []
    for _ in range(header["frames"]):
        shape = (r.varint(1 << 16), r.varint(1 << 16))
        n = r.varint(64)
        strings = [[r.raw(r.varint(r.remaining()))] for _ in range(n)]
        try:
            out = model.decompress(strings, shape)
        except Exception as err:
            raise StreamError(f"corrupt vcm ICM frame data ({type(err).__name__})") from None
        pads = _pad(torch.zeros(1, 1, h, w), mult)[1]
        frames.append(to_u8(_crop(out["x_hat"], pads, h, w))[0])
    if r.remaining():
        raise StreamError("malformed vcm ICM bitstream (trailing frame data)")
    return np.stack(frames), header
