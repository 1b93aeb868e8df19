"""Structure-aware fuzzing of vcm's bitstreams (``.nerv`` and ``.icm``).

    python -m tests.fuzz_streams nerv|icm CASES SEED [--report FILE]

Starts from real streams (a paper-pipeline NeRV stream, rate–distortion NeRV and HiNeRV streams,
a tiny SA-ICM stream), mutates them — header fields (values, types, deletions, unknown keys),
the compressed header itself (truncation, junk, zip bombs, deep nesting), tensor/frame data
(bit flips, truncation, extension, forged varints, latent shapes) — and, except for a few
container-level cases, **recomputes the checksums** so that the inner parsers are reached. Every
case is decoded through the library's real entry points (the first frames only: a stream that
parses and builds may declare a million frames).

Outcome classes: ``decoded``, ``rejected`` (a one-line StreamError/VcmError), ``crash`` (any
other exception: a bug) and ``slow`` (over ``SLOW_SECONDS``). Prints one JSON summary; the peak
resident memory of the whole run is part of it. Runs in its own process so that a native crash
cannot take the test runner with it; the case being decoded is written to ``--report`` first.
"""

from __future__ import annotations

import json
import math
import os
import resource
import signal
import struct
import sys
import tempfile
import time
import traceback
import zlib
from pathlib import Path

import numpy as np

os.environ.setdefault("VCM_MEMORY_BUDGET", "1G")

SLOW_SECONDS = 5.0
HOSTILE = [0, -1, 1, 2, 3, 7, 8, 64, 255, 256, 1023, 1024, 16384, 16385, 65535, 65536, 10**6, 10**9, 2**31, 2**63,
           10**30, -10**9, 0.5, -0.0, 1e-300, 1e308, math.inf, -math.inf, math.nan, "", "x", "nerv", "hinerv",
           "affine", "rd", "tcm", "tcm-tiny", "mbt2018-mean", "../x", "x" * 300, [], [0], [1, 2], [-1, 10**9],
           [10**6] * 3, [[1]], {}, {"a": 1}, None, True, False]
DATA = Path(__file__).resolve().parent / "data"


# ----------------------------------------------------------------------------- container surgery


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


def _leaves(obj, path=()):
    yield path
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, path + (i,))


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
    paths = list(_leaves(header))[1:]
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


def mutate(data: bytes, rng, icm: bool) -> tuple[bytes, str]:
    prefix, sections = split(data)
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
        header = json.loads(zlib.decompress(head[1]))
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
    HiNeRV streams (v2) made here from tiny networks (a few training steps)."""
    import torch

    from tests.conftest import moving_frames
    from vcm.codec import nerv_stream, rd
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
        seeds.append(nerv_stream.encode(nerv_stream.NervStream(cfg, video, tensors, arch, "rd")))
    return seeds


def icm_seed(folder: Path) -> tuple[bytes, Path]:
    """A tiny SA-ICM (TCM) checkpoint and a one-frame 40×56 stream coded with it."""
    import torch

    from tests.conftest import moving_frames
    from vcm.icm.codec import encode_frames, MAGIC, VERSION
    from vcm.icm.models import fingerprint
    from vcm.icm.tcm import TCM, TINY
    from vcm.bitstream import container

    torch.manual_seed(0)
    model = TCM(TINY).eval()
    model.update(force=True)
    ckpt = folder / "tiny.pth.tar"
    torch.save({"arch": "tcm-tiny", "config": TINY.to_dict(), "state_dict": model.state_dict()}, ckpt)
    frames = moving_frames(t=1, h=40, w=56)
    with torch.no_grad():
        data, _ = encode_frames(model, frames, "cpu")
    header = {"name": "fuzz", "sequence": None, "width": 56, "height": 40, "fps": 25.0, "frames": 1,
              "source_frames": [0, 1], "arch": "tcm-tiny", "config": TINY.to_dict(), "checkpoint": ckpt.name,
              "checkpoint_fingerprint": fingerprint(ckpt)}
    return container.pack(MAGIC, VERSION, [(b"HEAD", container.pack_header(header)), (b"DATA", data)]), ckpt


# ----------------------------------------------------------------------------- decoding a case


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang


def decode_nerv(data: bytes, folder: Path) -> None:
    import torch

    from vcm.codec import nerv_stream
    from vcm.codec.compress import iter_frames

    stream = nerv_stream.decode(data)
    chunks = iter_frames(stream, torch.device("cpu"))
    next(chunks)  # the first frames prove the network builds and runs; all of them could be 10⁶


def decode_icm(data: bytes, folder: Path) -> None:
    from vcm.icm.codec import open_icm

    path = folder / "case.icm"
    path.write_bytes(data)
    _, frames = open_icm(path, "cpu")
    for _ in frames:
        pass


def run(kind: str, cases: int, seed: int, report: Path | None) -> dict:
    from vcm.errors import VcmError
    import vcm.icm.codec as icm_codec

    rng = np.random.default_rng(seed)
    folder = Path(tempfile.mkdtemp(prefix="vcm-fuzz-"))
    if kind == "nerv":
        seeds, decode = nerv_seeds(), decode_nerv
    else:
        stream, _ = icm_seed(folder)
        seeds, decode = [stream], decode_icm
        # Loading the checkpoint is the same for every case (its fingerprint is still checked): once
        # per (file, architecture), errors included.
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
    for s in seeds:  # the unmutated streams must decode
        decode(s, folder)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    outcomes: dict[str, int] = {}
    by_mutation: dict[str, dict[str, int]] = {}
    crashes, slowest = [], 0.0
    signal.signal(signal.SIGALRM, _alarm)
    for i in range(cases):
        base = seeds[i % len(seeds)]
        data, what = mutate(base, rng, kind == "icm")
        if report is not None:
            report.write_text(json.dumps({"case": i, "mutation": what, "hex": data.hex()}))
        start = time.time()
        signal.alarm(int(4 * SLOW_SECONDS))
        try:
            decode(data, folder)
            outcome = "decoded"
        except Hang:
            outcome = "slow"
        except VcmError as err:
            outcome = "rejected" if "\n" not in str(err) else "crash"
        except Exception as err:  # noqa: BLE001 - a bug the fuzzer found
            outcome = "crash"
            crashes.append({"case": i, "mutation": what, "error": f"{type(err).__name__}: {err}"[:300],
                            "where": traceback.format_exc(limit=-3)[-800:]})
        finally:
            signal.alarm(0)
        seconds = time.time() - start
        slowest = max(slowest, seconds)
        if seconds > SLOW_SECONDS and outcome != "crash":
            outcome = "slow"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        cls = what.split(":")[0]
        by_mutation.setdefault(cls, {}).setdefault(outcome, 0)
        by_mutation[cls][outcome] += 1
    return {"kind": kind, "cases": cases, "seed": seed, "outcomes": outcomes, "by_mutation": by_mutation,
            "crashes": crashes[:10], "slowest_case_seconds": round(slowest, 3),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "rss_growth_during_cases_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before, 1),
            "memory_budget": os.environ["VCM_MEMORY_BUDGET"]}


if __name__ == "__main__":
    args = sys.argv[1:]
    report = None
    if "--report" in args:
        i = args.index("--report")
        report = Path(args[i + 1])
        del args[i:i + 2]
    kind, cases, seed = args[0], int(args[1]), int(args[2])
    print(json.dumps(run(kind, cases, seed, report)))
