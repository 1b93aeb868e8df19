"""The ``.icm`` bitstream: every frame coded independently by a learned image codec (SA-ICM).

Its container and header are :mod:`vcm.icm.stream_header`'s. Frames are padded (zeros, centred, as
the TCM evaluation does) to the network's multiple and cropped back. The decoder rebuilds the network
from the same checkpoint (checked by fingerprint).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from vcm import progress
from vcm.bitstream import budget, container
from vcm.bitstream.bits import Reader, StreamError, Writer
from vcm.codec.stage_state import StageCheckpoint, partial_path
from vcm.errors import VcmError
from vcm.fsutil import output_lock, require_input, write_bytes
from vcm.icm import rans_guard
from vcm.icm.models import decode_bytes_per_pixel, fingerprint, load_checkpoint, pad_multiple, string_symbols
from vcm.icm.stream_header import MAGIC, MAX_STRINGS, VERSION, read_header


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """``x [..., H, W]`` zero-padded on both sides of each axis to a multiple of ``multiple`` (the size the codec
    codes), with the pads (left, right, top, bottom) that :func:`crop_back` takes off again."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    pads = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
    return F.pad(x, pads), pads


def crop_back(x: torch.Tensor, pads, h: int, w: int) -> torch.Tensor:
    return x[..., pads[2]:pads[2] + h, pads[0]:pads[0] + w]


def to_u8(x_hat: torch.Tensor) -> np.ndarray:
    return torch.round(x_hat.clamp(0, 1) * 255).to(torch.uint8).cpu().numpy()


def _kept_frames(checkpoint: StageCheckpoint, frames: int) -> tuple[int, bytes]:
    """(frames, their DATA payload) that ``checkpoint`` holds for this very encode; (0, b"") for none,
    another encode's or a damaged one."""
    kept = checkpoint.load()
    if kept is not None and isinstance(kept.get("frames"), int) and 0 <= kept["frames"] <= frames \
            and isinstance(kept.get("data"), bytes):
        return kept["frames"], kept["data"]
    if checkpoint.path.exists():
        progress.log(f"{checkpoint.path.name} holds another encode's frames (or is damaged); starting from the "
                     "first frame")
    return 0, b""


def encode_frames(model, frames_u8: np.ndarray, device,
                  checkpoint: StageCheckpoint | None = None) -> tuple[bytes, np.ndarray | None, int]:
    """(DATA payload, the encoder's own reconstruction ``uint8 [T,3,H,W]``, how many frames came from
    ``checkpoint``).

    ``checkpoint``: where the frames coded so far are kept (every ``SAVE_EVERY_S`` seconds and on Ctrl-C),
    and from which the same encode continues; frames are coded independently, so the payload is the
    same. A continued encode has no reconstruction of its kept frames: it returns ``None`` for it."""
    start, kept = _kept_frames(checkpoint, len(frames_u8)) if checkpoint is not None else (0, b"")
    w = Writer()
    w.raw(kept)
    recon = []
    mult = pad_multiple(model)
    stopped = False

    def save(frames: int) -> None:
        checkpoint.save({"frames": frames, "data": w.getvalue()})

    with progress.progress("icm encode", len(frames_u8), completed=start) as bar:
        for i in range(start, len(frames_u8)):
            frame = frames_u8[i]
            try:
                x = torch.from_numpy(frame).float().div(255).unsqueeze(0).to(device)
                xp, pads = pad_to_multiple(x, mult)
                out = model.compress(xp)
            except KeyboardInterrupt:  # the frame in progress is coded again
                stopped = True
                break
            w.varint(int(out["shape"][0]))
            w.varint(int(out["shape"][1]))
            w.varint(len(out["strings"]))
            for s in out["strings"]:
                w.varint(len(s[0]))
                w.raw(s[0])
            if "x_hat" in out:
                recon.append(to_u8(crop_back(out["x_hat"], pads, *frame.shape[1:]))[0])
            bar.advance(1)
            if checkpoint is not None and checkpoint.due():
                save(i + 1)
    if stopped:
        if checkpoint is not None and i > 0:
            save(i)
            progress.log(f"stopped after {i} of {len(frames_u8)} frames; they are kept in {checkpoint.path}: the "
                         "same command again continues from there")
        raise KeyboardInterrupt
    return w.getvalue(), (np.stack(recon) if recon and start == 0 else None), start


def encode_video(video, checkpoint: Path, out: Path, device, arch: str | None = None) -> dict:
    """Code every frame of ``video`` into ``out`` (.icm); returns a summary with bytes and time.

    A stopped encode keeps its coded frames in ``<out>.partial.pt`` and the same call continues it."""
    import hashlib

    from vcm import __version__
    from vcm.provenance import file_fingerprint

    start = time.time()
    model, arch, config = load_checkpoint(checkpoint, arch, device, own_arch=True)
    kept = StageCheckpoint.keyed(partial_path(out), {
        "vcm": __version__, "checkpoint": file_fingerprint(checkpoint), "arch": arch,
        "frames": hashlib.sha256(np.ascontiguousarray(video.frames_u8).data).hexdigest(),
        "shape": list(video.frames_u8.shape), "device": torch.device(device).type})
    with output_lock(out):  # a second encode into ``out`` would continue and overwrite the same kept frames
        data, _, continued = encode_frames(model, video.frames_u8, device, kept)
        blob = _stream(video, checkpoint, arch, config, data)
        write_bytes(out, blob)
        kept.discard()
    # the time is this run's: frames kept from a stopped one took none of it
    return {"bitstream": str(out), "bytes": len(blob), "seconds": time.time() - start, "frames": video.num_frames,
            "frames_coded": video.num_frames - continued, **({"frames_continued": continued} if continued else {})}


def _stream(video, checkpoint: Path, arch: str, config: dict, data: bytes) -> bytes:
    """The ``.icm`` file's bytes: container, header and the frames' DATA payload."""
    seq = video.info.sequence
    header = {"name": video.name, "sequence": seq.name if seq else None, "width": video.width, "height": video.height,
              "fps": video.fps, "frames": video.num_frames,
              "source_frames": [video.source_frames.start, video.source_frames.stop], "arch": arch, "config": config,
              "checkpoint": Path(checkpoint).name, "checkpoint_fingerprint": fingerprint(Path(checkpoint))}
    head = container.pack_header(header)
    return container.pack(MAGIC, VERSION, [(b"HEAD", head), (b"DATA", data)])


def _load_decoder(path: Path, header: dict, device, checkpoint: Path | None):
    ckpt = Path(checkpoint) if checkpoint else path.parent / header["checkpoint"]
    if not ckpt.is_file():
        raise VcmError(f"{path.name} was coded with {header['checkpoint']}; pass --checkpoint PATH to it")
    if fingerprint(ckpt) != header["checkpoint_fingerprint"]:
        raise VcmError(f"{ckpt.name} is not the checkpoint {path.name} was coded with (fingerprint differs)")
    model, _, config = load_checkpoint(ckpt, header["arch"], device)
    if config != header["config"]:
        raise StreamError(f"malformed vcm ICM bitstream (its codec configuration is not {ckpt.name}'s)")
    return model


def open_icm(path: Path, device, checkpoint: Path | None = None, select: Callable[[dict], range] | None = None
             ) -> tuple[dict, range, Iterator[np.ndarray]]:
    """Validate a ``.icm`` file and load its decoder → (header, the stream indices decoded, their frames ``uint8
    [1,3,H,W]`` one at a time). ``select(header)``: the stream indices (0-based) to decode, chosen from the header
    (default all); every frame is intra-coded, so the others are only parsed (the container's checksum already
    covered their bytes).

    Every frame's latent shape is checked against the header's frame size and the memory budget
    is checked before the first frame is decoded.
    """
    path = Path(path)
    if path.is_dir():
        from vcm.bitstream.container import folder_given

        raise VcmError(folder_given(path, ".icm"))
    require_input(path)
    header, data = read_header(path.read_bytes())
    chosen = range(header["frames"]) if select is None else select(header)
    if not 0 <= chosen.start < chosen.stop <= header["frames"]:  # the callers' selections are checked already
        raise ValueError(f"frames {chosen.start}:{chosen.stop} of a stream of {header['frames']}")
    model = _load_decoder(path, header, device, checkpoint)
    h, w = header["height"], header["width"]
    mult = pad_multiple(model)
    ph, pw = h + (-h % mult), w + (-w % mult)
    latent = (ph // LATENT_STRIDE, pw // LATENT_STRIDE)
    # Each string is padded for the symbols its declared latent needs (see rans_guard), and held
    # twice while decoding (Python's bytes and the native decoder's copy).
    padding = 2 * (sum(rans_guard.padded_bytes(0, n) for n in string_symbols(model, latent)) + 17 * len(data))
    budget.check(decode_bytes_per_pixel(model) * ph * pw + padding, f"{w}x{h} frames with {header['arch']}", "vcm ICM")
    return header, chosen, _frames(model, data, header, latent, chosen)


LATENT_STRIDE = 64  # the hyper-latent z is 1/64 of the padded frame in every supported architecture


def _frames(model, data: bytes, header: dict, latent: tuple[int, int], wanted: range) -> Iterator[np.ndarray]:
    h, w = header["height"], header["width"]
    pads = pad_to_multiple(torch.zeros(1, 1, h, w), pad_multiple(model))[1]
    r = Reader(data, "frame data")
    for i in range(header["frames"]):
        shape = (r.varint(1 << 16), r.varint(1 << 16))
        if shape != latent:
            raise StreamError(f"malformed vcm ICM frame data (latent {shape[0]}x{shape[1]}, the header's "
                              f"{w}x{h} frames need {latent[0]}x{latent[1]})")
        symbols = string_symbols(model, shape)
        n = r.varint(MAX_STRINGS)
        if n != len(symbols):
            raise StreamError(f"malformed vcm ICM frame data ({n} entropy-coded strings, {header['arch']} writes "
                              f"{len(symbols)})")
        strings = [r.raw(r.varint(r.remaining())) for _ in symbols]
        if i not in wanted:
            continue
        strings = [[rans_guard.pad(string, count)] for string, count in zip(strings, symbols)]
        try:
            with torch.no_grad():
                out = model.decompress(strings, shape)
        except (ValueError, RuntimeError, IndexError, TypeError, OverflowError) as err:
            raise StreamError(f"corrupt vcm ICM frame data ({type(err).__name__})") from None
        yield to_u8(crop_back(out["x_hat"], pads, h, w))
    if r.remaining():
        raise StreamError("malformed vcm ICM bitstream (trailing frame data)")


def decode_icm_file(path: Path, device, checkpoint: Path | None = None,
                    select: Callable[[dict], range] | None = None) -> tuple[np.ndarray, dict]:
    """Decode a ``.icm`` file (or the frames ``select`` chooses, as :func:`open_icm` takes it) → (``uint8
    [T,3,H,W]``, header), for callers that need them at once (checked against the memory budget). The
    checkpoint is looked up beside the file."""
    header, chosen, decoded = open_icm(path, device, checkpoint, select)
    budget.check(len(chosen) * 3 * header["width"] * header["height"], f"{len(chosen)} frames held at once", "vcm ICM")
    return np.concatenate(list(decoded)), header
