"""Structure-aware fuzzing of vcm's bitstreams (``.nerv`` and ``.icm``).

    python -m tests.fuzz_streams nerv|icm CASES SEED [--report FILE]

Starts from real streams (a paper-pipeline NeRV stream, rate–distortion NeRV and HiNeRV streams,
a tiny SA-ICM stream), mutates them — header fields (values, types, deletions, unknown keys),
the compressed header itself (truncation, junk, zip bombs, deep nesting), tensor/frame data
(bit flips, truncation, extension, forged varints, latent shapes), junk words before the ANS
data, bit flips in the bit-packed tensor records of version-5 and -6 rd streams, header edits that change tensor shapes, declared frames / frame size / strides / widths,
and (``.icm``) frame sizes rewritten consistently in the header and every frame's latent shape —
and, except for a few container-level cases, **recomputes the checksums** so that the inner
parsers are reached. Every case is decoded whole through the library's real entry points in a forked
worker process, so that a native crash (a signal) is an outcome, not the end of the run; a worker that
dies or hangs is replaced by a fresh one (and a case that killed one is tried again alone in a fresh one).

Outcome classes: ``decoded``, ``rejected`` (a one-line StreamError/VcmError), ``crash`` (any
other exception: a bug), ``signal`` (the process was killed by one: a native crash) and ``slow``
(over ``SLOW_SECONDS``). Prints one JSON summary with the peak resident memory of any worker (so
of any case); the case being decoded is written to ``--report`` first. ``.icm`` runs first decode the five
consistent-size rewrites that once crashed the native entropy decoder (``fixed`` in the summary).
"""

from __future__ import annotations

import faulthandler
import gc
import json
import math
import os
import resource
import select
import signal
import struct
import sys
import tempfile
import time
import traceback
import zlib
from pathlib import Path

import numpy as np

from tests.fuzz_files import paths_in


def _fuzzing_environment() -> None:
    """The fuzzer's process settings, made where it runs as a program (main), never on import: a test that imports
    a helper from here kept them, and a later CLI test in the same pytest worker decoded under a 3 GMAC budget."""
    os.environ.setdefault("VCM_MEMORY_BUDGET", "1G")
    # Each case may decode every frame it declares; the work cap (about 2 s on one core) keeps a case
    # short as a user's VCM_WORK_BUDGET would. The default rules are tested on their own.
    os.environ.setdefault("VCM_WORK_BUDGET", "3G")
    # Workers are forked from a process that has run torch: a forked copy of a multi-threaded OpenMP pool stalls
    # (run with the default threads on 2 cores, 9 of 400 cases hit the 20 s limit and read as "slow"; with one
    # thread all 400 took under 0.3 s). Set before torch is imported.
    os.environ.setdefault("OMP_NUM_THREADS", "1")


SLOW_SECONDS = 5.0
FIXED_SECONDS = 120.0
HOSTILE = [0, -1, 1, 2, 3, 7, 8, 64, 255, 256, 1023, 1024, 16384, 16385, 65535, 65536, 10**6, 10**9, 2**31, 2**63,
           10**30, -10**9, 0.5, -0.0, 1e-300, 1e308, math.inf, -math.inf, math.nan, "", "x", "nerv", "hinerv",
           "affine", "rd", "tcm", "tcm-tiny", "mbt2018-mean", "../x", "x" * 300, [], [0], [1, 2], [-1, 10**9],
           [10**6] * 3, [[1]], {}, {"a": 1}, None, True, False]
DATA = Path(__file__).resolve().parent / "data"


# ----------------------------------------------------------------------------- container surgery


def head_json(blob: bytes) -> dict:
    from tests.conftest import head_json as read

    return read(blob)


def split(data: bytes) -> tuple[bytes, list[list]]:
    pos, sections = 6, []
    while pos + 8 <= len(data):
        tag = data[pos:pos + 4]
        (n,) = struct.unpack_from("<I", data, pos + 4)
        sections.append([tag, data[pos + 8:pos + 8 + n]])
        pos += 12 + n
    return data[:6], sections


def join(prefix: bytes, sections: list[list]) -> bytes:
    out = bytearray(prefix)
    for tag, payload in sections:
        out += tag + struct.pack("<I", len(payload)) + payload + struct.pack("<I", zlib.crc32(tag + payload) & 0xFFFFFFFF)
    return bytes(out)


def _get(obj, path):
    for p in path:
        obj = obj[p]
    return obj


def _hostile_value(rng, old):
    if isinstance(old, (int, float)) and not isinstance(old, bool) and rng.random() < 0.4:
        near = [old + 1, old - 1, old * 2, old * 1000, -old, old // 2 if isinstance(old, int) else old / 3]
        return near[int(rng.integers(len(near)))]
    return HOSTILE[rng.integers(len(HOSTILE))]


def mutate_header(header: dict, rng) -> tuple[dict, str]:
    paths = list(paths_in(header))[1:]
    path = paths[rng.integers(len(paths))]
    parent, key = _get(header, path[:-1]), path[-1]
    op = rng.choice(["replace", "replace", "replace", "delete", "unknown", "wrap"])
    if op == "replace":
        parent[key] = _hostile_value(rng, parent[key])
    elif op == "delete":
        if isinstance(parent, dict):
            del parent[key]
        else:
            parent.pop(key)
    elif op == "unknown":
        target = parent if isinstance(parent, dict) else header
        target["zz_unknown"] = 1
    else:
        parent[key] = [parent[key]]
    return header, f"header.{op}:{'.'.join(map(str, path))}"


def mutate_raw_header(blob: bytes, rng) -> tuple[bytes, str]:
    op = rng.choice(["truncate", "junk", "bomb", "deep", "not_object", "not_utf8", "empty"])
    if op == "truncate":
        return blob[:rng.integers(0, max(len(blob) - 1, 1))], "head.truncate"
    if op == "junk":
        return blob + rng.bytes(int(rng.integers(1, 16))), "head.junk"
    if op == "bomb":
        return zlib.compress(b'{"a": "' + b"0" * (3 << 20) + b'"}', 9), "head.bomb"
    if op == "deep":
        return zlib.compress(b"[" * 100_000 + b"]" * 100_000), "head.deep"
    if op == "not_object":
        return zlib.compress(rng.choice([b"[1, 2]", b"3", b"null", b'"x"'])), "head.not_object"
    if op == "not_utf8":
        return zlib.compress(b'{"a": "\xff\xfe"}'), "head.not_utf8"
    return b"", "head.empty"


def mutate_data(payload: bytes, rng, icm: bool) -> tuple[bytes, str]:
    b = bytearray(payload)
    ops = ["flip", "flip", "set", "truncate", "extend", "varint"] + (["latent", "latent"] if icm else [])
    op = rng.choice(ops)
    if op == "flip" and b:
        for _ in range(int(rng.integers(1, 9))):
            i = int(rng.integers(len(b)))
            b[i] ^= 1 << int(rng.integers(8))
    elif op == "set" and b:
        i = int(rng.integers(len(b)))
        b[i] = int(rng.choice([0, 0xFF, 0x7F, 0x80]))
    elif op == "truncate":
        b = b[:int(rng.integers(0, max(len(b), 1)))]
    elif op == "extend":
        b += rng.bytes(int(rng.integers(1, 64)))
    elif op == "varint":
        i = int(rng.integers(max(len(b), 1)))
        b[i:i] = bytes([0xFF, 0xFF, 0xFF, 0xFF, 0x0F])
    elif op == "latent":  # the first frame's latent height/width varints
        big = int(rng.choice([0, 1, 2, 3, 100, 1 << 16, (1 << 16) + 1, 1 << 20]))
        enc = bytearray()
        while True:
            byte, big = big & 0x7F, big >> 7
            enc.append(byte | (0x80 if big else 0))
            if not big:
                break
        j = int(rng.integers(0, 2))
        b[j:j + 1] = enc
    return bytes(b), f"data.{op}"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(b: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        byte = b[pos]
        n |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return n, pos


# The consistent-size rewrites that once made CompressAI's native decoder read past a string.
ICM_REWRITES = [(1024, 1024), (2048, 2048), (2048, 1024), (16384, 1), (1, 16384)]
ICM_SIDES = [1, 2, 63, 64, 65, 128, 200, 256, 512, 1000, 1024, 2048, 4096, 16384]


def resize_icm(data: bytes, width: int, height: int) -> bytes:
    """The header's frame size and every frame's latent shape rewritten consistently (checksums
    recomputed): the strings stay as coded, the declared symbol counts grow or shrink."""
    prefix, sections = split(data)
    head = next(s for s in sections if s[0] == b"HEAD")
    dat = next(s for s in sections if s[0] == b"DATA")
    header = head_json(head[1])
    mult = 16 * header["config"].get("window", 4) if header["arch"].startswith("tcm") else 64
    latent = ((height + (-height % mult)) // 64, (width + (-width % mult)) // 64)
    header.update(width=width, height=height)
    head[1] = zlib.compress(json.dumps(header).encode(), 9)
    b, pos, out = dat[1], 0, bytearray()
    for _ in range(header["frames"]):
        _, pos = _read_varint(b, pos)
        _, pos = _read_varint(b, pos)
        n, pos = _read_varint(b, pos)
        out += _varint(latent[0]) + _varint(latent[1]) + _varint(n)
        for _ in range(n):
            length, start = _read_varint(b, pos)
            out += b[pos:start + length]
            pos = start + length
    dat[1] = bytes(out)
    return join(prefix, sections)


def _ans_words_at(payload: bytes) -> int | None:
    """Where the ANS words of an rd ``DATA`` payload start: they end it, after their count."""
    for n in range(len(payload) // 4, -1, -1):
        start = len(payload) - 4 * n
        for width in range(1, 6):
            if start - width >= 0:
                try:
                    value, end = _read_varint(payload, start - width)
                except IndexError:
                    continue
                if end == start and value == n and _varint(n) == payload[start - width:start]:
                    return start - width
    return None


def junk_words(data: bytes, rng) -> tuple[bytes, str]:
    """Junk 32-bit words put in front of an rd stream's ANS data (the count raised to match)."""
    prefix, sections = split(data)
    dat = next(s for s in sections if s[0] == b"DATA")
    at = _ans_words_at(dat[1])
    n, start = _read_varint(dat[1], at)
    k = int(rng.choice([1, 2, 7, 1000]))
    dat[1] = dat[1][:at] + _varint(n + k) + rng.bytes(4 * k) + dat[1][start:]
    return join(prefix, sections), "junk_words"


def record_bits(data: bytes, rng) -> tuple[bytes, str]:
    """A bit flipped in the bit-packed tensor records of a version-5 or -6 rd stream (between the step
    codes and the ANS words), resealed: a law, a range, a mode or the padding changes."""
    from vcm.bitstream.bits import Writer
    from vcm.codec import nerv_stream, rd_coding

    prefix, sections = split(data)
    dat = next(s for s in sections if s[0] == b"DATA")
    tensors = nerv_stream.decode(data).tensors
    w = Writer()
    w.varint(sum(int(np.prod(t.shape)) for t in tensors))  # the parameter count that opens DATA
    rd_coding._write_step_codes(tensors, w)
    start, end = len(w.getvalue()), _ans_words_at(dat[1])
    bit = int(rng.integers(8 * start, 8 * end))
    payload = bytearray(dat[1])
    payload[bit // 8] ^= 0x80 >> (bit % 8)
    dat[1] = bytes(payload)
    return join(prefix, sections), "records"


def shape_edits(header: dict) -> dict:
    """Header edits (name → function editing ``header`` in place) that change the declared tensor
    shapes or the tensors coded along time."""
    m = header["model"]
    if header.get("arch") == "hinerv":
        edits = {
            "channels": lambda: m.update(channels=[1] * len(m["channels"])),
            "kernel": lambda: m.update(kernel=5 if m["kernel"] == 3 else 3),
            "expansion": lambda: m.update(expansion=m["expansion"] * 2),
            "grid_frames": lambda: m.update(grid_frames=m["grid_frames"] + 1),
            "grid_channels": lambda: m.update(grid_channels=m["grid_channels"] + 1),
            "temporal_add": lambda: header.update(temporal=header.get("temporal", []) + ["grids.0"]),
            "temporal_drop": lambda: header.update(temporal=header.get("temporal", [])[1:] + ["stages.0.proj.weight"]),
        }
    else:
        edits = {
            "fc_dim": lambda: m.update(fc_dim=m["fc_dim"] + 1),
            "stem_dims": lambda: m.update(stem_dims=[d + 1 for d in m["stem_dims"]]),
            "expansion": lambda: m.update(expansion=m["expansion"] * 2),
            "embed_levels": lambda: m.update(embed_levels=m["embed_levels"] + 1),
            "temporal_add": lambda: header.update(temporal=["head.weight"]),
        }
    return edits


def _edit_model(header: dict, rng) -> str:
    edits = shape_edits(header)
    name = list(edits)[int(rng.integers(len(edits)))]
    edits[name]()
    return name


def _scale_model(header: dict, what: str, rng) -> None:
    """Declared frames, frame size, strides or widths multiplied (kept self-consistent)."""
    m, v = header["model"], header["video"]
    k = int(rng.choice([2, 4, 16, 64, 256]))
    if what == "frames":
        n = int(rng.choice([100, 1000, 5000, 50_000, 10**6]))
        v.update(frames=n, source_frames=[0, n])
    elif what == "size":
        m.update(height=m["height"] * k, width=m["width"] * k, grid_h=m["grid_h"] * k, grid_w=m["grid_w"] * k)
    elif what == "strides":
        m["strides"] = [min(8, s * 2) for s in m["strides"]]
        m.update(height=m["height"] * 2, width=m["width"] * 2)
    elif "channels" in m:  # widths of a HiNeRV
        m.update(channels=[c * k for c in m["channels"]], grid_channels=m["grid_channels"] * k)
    else:
        m.update(fc_dim=m["fc_dim"] * k, stem_dims=[d * k for d in m["stem_dims"]])


# Classes whose every case must be refused (the decoded frames would otherwise silently differ);
# they and the declared-cost classes are decoded whole, under the default memory budget.
MUST_REFUSE = ("junk_words", "shape")
DECLARED = ("declared.frames", "declared.size", "declared.strides", "declared.widths")


def mutate(data: bytes, rng, icm: bool) -> tuple[bytes, str]:
    prefix, sections = split(data)
    roll = rng.random()
    if icm and roll < 0.15:
        w, h = (int(rng.choice(ICM_SIDES)), int(rng.choice(ICM_SIDES)))
        return resize_icm(data, w, h), "resize"
    header = head_json(next(s for s in sections if s[0] == b"HEAD")[1])
    if not icm and roll < 0.30:
        head = next(s for s in sections if s[0] == b"HEAD")
        if roll < 0.10 and header.get("coding") == "rd":
            return junk_words(data, rng)
        if roll < 0.14 and header.get("coding") == "rd" and data[4] >= 5:
            return record_bits(data, rng)
        if roll < 0.18:
            what = "shape:" + _edit_model(header, rng)
        else:
            which = ["frames", "size", "strides", "widths"][int(rng.integers(4))]
            _scale_model(header, which, rng)
            what = f"declared.{which}"
        head[1] = zlib.compress(json.dumps(header).encode(), 9)
        return join(prefix, sections), what
    roll = rng.random()
    if roll < 0.03:  # unsealed corruption: must be caught by the checksums
        b = bytearray(data)
        b[int(rng.integers(len(b)))] ^= 0xFF
        return bytes(b), "container.unsealed"
    if roll < 0.06:
        b = bytearray(data)
        b[int(rng.integers(4, 6))] = int(rng.integers(0, 256))
        return bytes(b), "container.version_or_count"
    head = next(s for s in sections if s[0] == b"HEAD")
    dat = next(s for s in sections if s[0] == b"DATA")
    if roll < 0.50:
        header = head_json(head[1])
        header, what = mutate_header(header, rng)
        head[1] = zlib.compress(json.dumps(header).encode(), 9)
    elif roll < 0.62:
        head[1], what = mutate_raw_header(head[1], rng)
    else:
        dat[1], what = mutate_data(dat[1], rng, icm)
    return join(prefix, sections), what


# ----------------------------------------------------------------------------- seed streams


def nerv_seeds() -> list[bytes]:
    """Real streams: the committed paper-pipeline NeRV fixture (v1), and rate–distortion NeRV and
    HiNeRV streams made here from tiny networks (a few training steps), the HiNeRV once more with its
    grids context-coded."""
    import torch

    from tests.conftest import moving_frames
    from vcm.codec import nerv_stream, rd, rd_coding
    from vcm.entropy_models import context
    from vcm.nerv.config import TrainConfig
    from vcm.nerv.hinerv import HinervShape
    from vcm.nerv.model import NervShape
    from vcm.nerv.registry import create_representation

    seeds = [(DATA / "v1_tiny.nerv").read_bytes()]
    frames = moving_frames(t=4, h=24, w=32)
    for arch, cfg in (("nerv", NervShape(fc_dim=8, stem_dims=(16,), lower_width=4, embed_levels=8).config(24, 32)),
                      ("hinerv", HinervShape(grid_channels=2, channels=(8, 6), depths=(1, 0), min_grid=4).config(24, 32, 4))):
        torch.manual_seed(0)
        model = create_representation(arch, cfg)
        tensors, _ = rd.optimise(model, frames, None, TrainConfig(epochs=2, batch=2, lr=1e-3), rd.RDOptions(lam=1, epochs=1),
                                 torch.device("cpu"))
        video = {"name": "fuzz", "fps": 25, "frames": 4, "source_frames": [0, 4]}
        seeds.append(nerv_stream.encode(nerv_stream.NervStream(cfg, video, tensors, arch, "rd")).data)
    # The same HiNeRV with every grid that can be context-coded coded so, though at this size it
    # does not pay, once under each model: the fuzzer then reaches the context model's parameters, the
    # row-by-row decoding and (format version 6) the wave-by-wave one.
    for model in (context.ROWS, context.WAVES):
        for t in tensors:
            if rd_coding.context_capable(t.shape, t.temporal):
                t.coding = rd_coding.TensorCoding(*context.fit(t.coded_values(), model=model))
        seeds.append(nerv_stream.encode(nerv_stream.NervStream(cfg, video, tensors, "hinerv", "rd")).data)
    return seeds


def icm_seed(folder: Path) -> tuple[bytes, Path]:
    """A tiny SA-ICM (TCM) checkpoint and a one-frame 40×56 stream coded with it."""
    import torch

    from tests.conftest import moving_frames
    from vcm.icm.codec import encode_frames
    from vcm.icm.stream_header import MAGIC, VERSION
    from vcm.icm.models import fingerprint
    from vcm.icm.archs import TINY
    from vcm.icm.tcm import TCM
    from vcm.bitstream import container

    torch.manual_seed(0)
    model = TCM(TINY).eval()
    model.update(force=True)
    ckpt = folder / "tiny.pth.tar"
    torch.save({"arch": "tcm-tiny", "config": TINY.to_dict(), "state_dict": model.state_dict()}, ckpt)
    frames = moving_frames(t=1, h=40, w=56)
    with torch.no_grad():
        data, _, _ = encode_frames(model, frames, "cpu")
    header = {"name": "fuzz", "sequence": None, "width": 56, "height": 40, "fps": 25.0, "frames": 1,
              "source_frames": [0, 1], "arch": "tcm-tiny", "config": TINY.to_dict(), "checkpoint": ckpt.name,
              "checkpoint_fingerprint": fingerprint(ckpt)}
    return container.pack(MAGIC, VERSION, [(b"HEAD", container.pack_header(header)), (b"DATA", data)]), ckpt


# ----------------------------------------------------------------------------- decoding a case


def decode_nerv(data: bytes, folder: Path) -> None:
    import torch

    from vcm.codec import nerv_stream
    from vcm.codec.compress import iter_frames

    stream = nerv_stream.decode(data)
    for _ in iter_frames(stream, torch.device("cpu")):  # every frame: the decode plan bounds the work
        pass


def decode_icm(data: bytes, folder: Path) -> None:
    from vcm.icm.codec import open_icm

    path = folder / f"case{os.getpid()}.icm"
    path.write_bytes(data)
    _, _, frames = open_icm(path, "cpu")
    for _ in frames:
        pass


def _decode_one(decode, data: bytes, folder: Path, what: str) -> dict:
    """Decode one case in the worker → its outcome; the environment is restored afterwards."""
    from vcm.errors import VcmError

    saved = os.environ.get("VCM_MEMORY_BUDGET")
    if what.split(":")[0] in MUST_REFUSE + DECLARED or what.startswith("resize:"):
        os.environ.pop("VCM_MEMORY_BUDGET", None)  # the default budget, as a user has it
    try:
        decode(data, folder)
        return {"outcome": "decoded"}
    except VcmError as err:
        return {"outcome": "rejected" if "\n" not in str(err) else "crash", "error": str(err)[:300]}
    except Exception as err:  # noqa: BLE001 - a bug the fuzzer found
        return {"outcome": "crash", "error": f"{type(err).__name__}: {err}"[:300],
                "where": traceback.format_exc(limit=-3)[-800:]}
    finally:
        if saved is not None:
            os.environ["VCM_MEMORY_BUDGET"] = saved


def _read_exactly(fd: int, n: int) -> bytes | None:
    out = bytearray()
    while len(out) < n:
        chunk = os.read(fd, n - len(out))
        if not chunk:
            return None
        out += chunk
    return bytes(out)


def _serve(decode, folder: Path, cases_fd: int, results_fd: int) -> None:
    """The worker's loop: read a case (``<II`` lengths, name, bytes), decode it, write its outcome."""
    while True:
        head = _read_exactly(cases_fd, 8)
        if head is None:
            return
        n_what, n_data = struct.unpack("<II", head)
        what = _read_exactly(cases_fd, n_what).decode()
        data = _read_exactly(cases_fd, n_data)
        reply = json.dumps(_decode_one(decode, data, folder, what)).encode()
        os.write(results_fd, struct.pack("<I", len(reply)) + reply)


class Worker:
    """A forked process that decodes case after case (a fork per case cost 5× the decode itself).

    A native crash ends it with a signal and a hang is killed after the case's time limit: either is
    that case's outcome, and the next case gets a fresh worker forked from the warmed parent."""

    def __init__(self, decode, folder: Path):
        self.decode, self.folder, self.pid = decode, folder, None

    def _start(self) -> None:
        cases_r, self.cases_w = os.pipe()
        self.results_r, results_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            faulthandler.disable()  # a signal here is an outcome the parent records, not a report to print
            os.close(self.cases_w)
            os.close(self.results_r)
            try:
                _serve(self.decode, self.folder, cases_r, results_w)
            finally:
                os._exit(0)
        os.close(cases_r)
        os.close(results_w)

    def _end(self, kill: bool) -> int:
        os.close(self.cases_w)
        if kill:
            os.kill(self.pid, signal.SIGKILL)
        _, status = os.waitpid(self.pid, 0)
        os.close(self.results_r)
        self.pid = None
        return status

    def close(self) -> None:
        if self.pid is not None:
            self._end(kill=False)

    def run(self, data: bytes, what: str, limit: float) -> tuple[dict, float]:
        """One case → (result, seconds): outcome ``signal`` if the worker died of one, ``slow`` if
        it gave no answer within ``limit`` seconds."""
        if self.pid is None:
            self._start()
        start = time.time()
        name = what.encode()
        try:
            os.write(self.cases_w, struct.pack("<II", len(name), len(data)) + name + data)
        except BrokenPipeError:
            pass  # the worker is gone; its exit status says why below
        reply = bytearray()
        while len(reply) < 4 or len(reply) < 4 + struct.unpack_from("<I", reply)[0]:
            ready, _, _ = select.select([self.results_r], [], [], max(0.0, limit - (time.time() - start)))
            if not ready:
                self._end(kill=True)
                return {"outcome": "slow"}, time.time() - start
            chunk = os.read(self.results_r, 1 << 16)
            if not chunk:
                status = self._end(kill=False)
                seconds = time.time() - start
                if os.WIFSIGNALED(status):
                    return {"outcome": "signal", "error": f"signal {os.WTERMSIG(status)}"}, seconds
                return {"outcome": "crash", "error": f"exit {os.WEXITSTATUS(status)} without an outcome"}, seconds
            reply += chunk
        return json.loads(bytes(reply[4:])), time.time() - start


def run_case(worker: Worker, data: bytes, what: str, limit: float) -> tuple[dict, float]:
    """One case in ``worker`` → (result, seconds). A case whose worker died of a signal is tried again
    in a fresh one: if it then survives, an earlier case left the worker broken, which is a crash too."""
    result, seconds = worker.run(data, what, limit)
    if result["outcome"] == "signal":
        alone, _ = worker.run(data, what, limit)
        if alone["outcome"] != "signal":
            result = {"outcome": "crash", "error": f"{result['error']}, only after earlier cases in the same "
                                                   f"process (alone: {alone['outcome']})"}
    return result, seconds


def _cache_checkpoint_loads() -> None:
    """Loading the .icm checkpoint is the same for every case (its fingerprint is still checked):
    once per (file, architecture), errors included, in the parent so that every child inherits it."""
    import vcm.icm.codec as icm_codec
    from vcm.errors import VcmError

    original, memo = icm_codec.load_checkpoint, {}

    def cached(path, arch=None, device="cpu"):
        key = (str(path), arch)
        if key not in memo:
            try:
                memo[key] = (True, original(path, arch, device))
            except VcmError as err:
                memo[key] = (False, err)
        ok, value = memo[key]
        if not ok:
            raise value
        return value

    icm_codec.load_checkpoint = cached


def run(kind: str, cases: int, seed: int, report: Path | None) -> dict:
    """Fuzz ``cases`` mutations of ``kind``'s streams; the decoded files go to a temporary folder
    that is removed at the end."""
    with tempfile.TemporaryDirectory(prefix="vcm-fuzz-") as folder:
        return _run_in(Path(folder), kind, cases, seed, report)


def _run_in(folder: Path, kind: str, cases: int, seed: int, report: Path | None) -> dict:
    rng = np.random.default_rng(seed)
    fixed: list[tuple[bytes, str]] = []
    if kind == "nerv":
        seeds, decode = nerv_seeds(), decode_nerv
    else:
        stream, _ = icm_seed(folder)
        seeds, decode = [stream], decode_icm
        _cache_checkpoint_loads()
        fixed = [(resize_icm(stream, w, h), f"resize:{w}x{h}") for w, h in ICM_REWRITES]
    for s in seeds:  # the unmutated streams must decode (in this process: it also warms the caches)
        decode(s, folder)
    gc.collect()
    gc.freeze()  # the workers' garbage collector then leaves the parent's pages shared (fork stays cheap)
    worker = Worker(decode, folder)
    outcomes: dict[str, int] = {}
    by_mutation: dict[str, dict[str, int]] = {}
    crashes, slowest, fixed_results = [], 0.0, {}
    for i in range(len(fixed) + cases):
        if i < len(fixed):  # the known rewrites, under the default budgets, with time to decode
            data, what = fixed[i]
            result, seconds = worker.run(data, what, FIXED_SECONDS)
            fixed_results[what] = {"outcome": result["outcome"], "seconds": round(seconds, 2),
                                   "error": result.get("error", "")[:200]}
            continue
        base = seeds[i % len(seeds)]
        data, what = mutate(base, rng, kind == "icm")
        if report is not None:
            report.write_text(json.dumps({"case": i, "mutation": what, "hex": data.hex()}))
        result, seconds = run_case(worker, data, what, 4 * SLOW_SECONDS)
        outcome = result["outcome"]
        if outcome in ("crash", "signal"):
            crashes.append({"case": i, "mutation": what, "error": result.get("error", ""), "where": result.get("where", "")})
        if seconds > SLOW_SECONDS and outcome not in ("crash", "signal"):
            outcome = "slow"
        slowest = max(slowest, seconds)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        cls = what.split(":")[0]
        by_mutation.setdefault(cls, {}).setdefault(outcome, 0)
        by_mutation[cls][outcome] += 1
    worker.close()  # ended and waited for, so that its peak memory is in RUSAGE_CHILDREN
    gc.unfreeze()
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"kind": kind, "cases": cases, "seed": seed, "outcomes": outcomes, "by_mutation": by_mutation,
            "fixed": fixed_results, "crashes": crashes[:10], "slowest_case_seconds": round(slowest, 3),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "peak_case_rss_mib": round(children, 1), "memory_budget": os.environ["VCM_MEMORY_BUDGET"],
            "work_budget": os.environ["VCM_WORK_BUDGET"]}


if __name__ == "__main__":
    args = sys.argv[1:]
    report = None
    if "--report" in args:
        i = args.index("--report")
        if i + 1 == len(args):
            sys.exit("--report needs a file")
        report = Path(args[i + 1])
        del args[i:i + 2]
    if len(args) != 3 or args[0] not in ("nerv", "icm") or not (args[1].isdigit() and args[2].isdigit()):
        sys.exit("usage: python -m tests.fuzz_streams nerv|icm CASES SEED [--report FILE]")
    _fuzzing_environment()
    print(json.dumps(run(args[0], int(args[1]), int(args[2]), report)))
