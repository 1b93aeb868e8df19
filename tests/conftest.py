import atexit
import contextlib
import os
import shutil
import struct
import tempfile
import zlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("VCM_PROGRESS", "0")
# Under pytest-xdist each worker gets its share of the cores: two torch processes that each spin
# two threads on two cores run a training step 10× slower, not 2×. Set before torch is imported,
# and inherited by every CLI subprocess a test starts.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    from vcm.cpus import usable_cores  # no torch: read before torch is imported

    _share = max(1, usable_cores() // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(_share)
# Reference detections are cached per user; the tests keep theirs apart (and start empty), and
# each process that made one removes it when it ends.
os.environ["VCM_CACHE"] = tempfile.mkdtemp(prefix="vcm-test-cache-")
atexit.register(shutil.rmtree, os.environ["VCM_CACHE"], ignore_errors=True)
# Where the environment forbids bytecode caches, every CLI subprocess recompiles torch._dynamo and
# sympy (imported on an optimizer's first call): ~10 s each. Let the first one write the caches.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False
# Triton reads this when it is first imported: without a GPU, Triton kernels run in its
# interpreter on CPU tensors, so the CUDA kernels' numerics are still tested. With a GPU the
# same tests run the compiled kernels on it.
if "TRITON_INTERPRET" not in os.environ:
    import torch

    if not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"
SHARED = Path(__file__).resolve().parents[2] / "shared"


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: a worker per core, at most four (each holds torch, a CLI subprocess and a clip)."""
    from vcm.cpus import usable_cores

    return max(1, min(usable_cores(), 4))


def pytest_collection_modifyitems(config, items):
    """The tests marked ``slow`` start first, so that on several workers none of them is left for last."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: otherwise in file order


ANNOTATIONS = SHARED / "data" / "sfu-hw-annotations"


@pytest.fixture(scope="session", autouse=True)
def _working_folder_of_its_own(tmp_path_factory):
    """Commands write beside the working folder (``runs/``, ``runs/latest``): the tests' processes work in a
    folder of their own, so that the suite never repoints a checkout's ``runs/latest`` (``vcm compress``'s
    default) at a test's run, which pytest then removes. Set after collection, which reads ``testpaths``."""
    saved = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    os.chdir(saved)
    # a test that starts a command in the repository (cwd=ROOT) leaves runs/latest there, pointing at its run
    latest = Path(__file__).resolve().parents[1] / "runs" / "latest"
    if latest.is_symlink() and tmp_path_factory.getbasetemp().parent in latest.resolve().parents:
        pytest.fail(f"a test pointed {latest} at its own run: start its command in its tmp_path, not the repository")


@pytest.fixture(scope="session")
def carphone():
    from vcm.samples import sample_clip

    return sample_clip("carphone")


def moving_frames(t: int = 6, h: int = 36, w: int = 44, seed: int = 0, noise: float = 2.0) -> np.ndarray:
    """A smooth synthetic clip (a bright square moving on a gradient): ``uint8 [T,3,H,W]``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    frames = np.empty((t, 3, h, w), np.uint8)
    for i in range(t):
        base = np.stack([xx * 255 / w, yy * 255 / h, np.full((h, w), 80.0)])
        x0, y0 = (2 + 2 * i) % max(w - 4, 1), (2 + i) % max(h - 4, 1)
        base[:, y0:y0 + h // 3, x0:x0 + w // 3] = np.array([230.0, 40.0, 200.0])[:, None, None]
        frames[i] = np.clip(base + rng.normal(0, noise, base.shape), 0, 255).astype(np.uint8)
    return frames


def tiny_video(folder: Path, t: int = 6, name: str = "Tiny_32x24_25.yuv"):
    """A ``t``-frame 32×24 YUV clip of :func:`moving_frames` written into ``folder``, opened."""
    from vcm.video import open_video
    from vcm.video.yuv import write_yuv420

    write_yuv420(folder / name, moving_frames(t=t, h=24, w=32))
    return open_video(folder / name)


def tiny_ctc_config(folder: Path, train: str, codecs: str) -> Path:
    """A CTC config on a 4-frame 48×32 clip of :func:`moving_frames` with a tiny NeRV preset (``train``: the
    preset's train section, YAML flow mapping; ``codecs``: the config's codecs section, where ``{preset}``
    names the preset's file), all written into ``folder``; returns the config's path."""
    from vcm.video.yuv import write_yuv420

    write_yuv420(folder / "Tiny_48x32_25.yuv", moving_frames(t=4, h=32, w=48))
    preset = folder / "tiny.yaml"
    preset.write_text("model: {arch: nerv, fc_dim: 8, stem_dims: [24], lower_width: 6, embed: '1.25_8'}\n"
                      f"train: {train}\n")
    cfg = folder / "ctc.yaml"
    cfg.write_text(f"sequences: [{{name: tiny, path: {folder / 'Tiny_48x32_25.yuv'}, frames: all}}]\n"
                   f"device: cpu\ncodecs:\n{codecs.format(preset=preset)}")
    return cfg


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A tiny NeRV fitted on a 6-frame 32×24 YUV clip: (folder holding ``run/``, video)."""
    import torch

    from vcm.nerv.config import TrainConfig
    from vcm.nerv.model import NervShape
    from vcm.nerv.train import fit

    root = tmp_path_factory.mktemp("tiny_run")
    video = tiny_video(root, t=6)
    mcfg = NervShape(fc_dim=12, stem_dims=(48,), lower_width=8, embed_levels=16).config(24, 32)
    fit(video, mcfg, TrainConfig(epochs=20, batch=2, lr=3e-3, checkpoint_every=20), root / "run", torch.device("cpu"))
    return root, video


@pytest.fixture
def small_clip():
    return moving_frames()


# What every finished CTC row measures beside its rate (vcm.ctc.result_row reads them), for rows a test writes by hand.
ROW_MEASURES = {"psnr": 30.0, "psnr_y": 31.0, "bpp": 0.01, "encode_seconds": 1.0, "decode_seconds": 0.1, "width": 176,
                "height": 144, "ms_ssim": None, "map": None, "ap50": None}


class Hung(BaseException):
    """What :func:`fails_after` raises: not an Exception, so that no handler of the code under test (an ``except
    OSError`` around a read, say) takes it for an error of its own and carries on."""


@contextlib.contextmanager
def fails_after(seconds: int, what: str):
    """Run the block in this process, ended by :class:`Hung` ``what`` after ``seconds``: for code that used to wait
    forever (on a named pipe, building a network of a million layers)."""
    import signal

    def hung(*_):
        raise Hung(what)

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_cli(*args, cwd=None, timeout=600, env=None):
    """Run the real entry point in a subprocess: ``python -m vcm ARGS`` (``env``: extra variables)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "vcm", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


def plugin_package(site: Path, dist: str, group: str, name: str, module: str, source: str) -> None:
    """An installed distribution ``dist`` as pip leaves one in site-packages (``site``, put on PYTHONPATH): its module
    and its dist-info, whose entry point ``name`` names the module in the entry-point ``group``."""
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{name} = {module}\n")
    (site / f"{module}.py").write_text(source)


def run_main(*args, cwd=None, env=None):
    """:func:`run_cli` in this process: the entry point ``vcm.cli.main(ARGS)`` with its stdout and stderr
    captured, returned as ``run_cli`` returns them (``cwd``: the working folder and ``env``: extra variables
    while it runs). For commands that end in a moment (a refusal, ``vcm info``), where a new interpreter's
    start would be most of the cost (2–3 s, 5 s with CompressAI); what needs a process of its own (signals,
    stdout as bytes, blocked imports, rich's width from ``COLUMNS``, a warning torch gives once a process)
    stays with :func:`run_cli`. An exception that ``main`` lets through fails the test, as its traceback
    would in a subprocess's stderr."""
    import contextlib
    import io
    import signal

    from vcm import progress
    from vcm.cli import main

    out, err = (io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True) for _ in range(2))
    saved_env = {k: os.environ.get(k) for k in env or {}}
    from vcm.stopping import STOP_SIGNALS, STOP_UNLESS_IGNORED

    handlers = {s: signal.getsignal(s) for s in STOP_SIGNALS + STOP_UNLESS_IGNORED}
    saved_argv, saved_cwd, quiet, code = sys.argv, os.getcwd(), progress._quiet, 0
    try:
        if cwd is not None:
            os.chdir(cwd)
        os.environ.update({k: str(v) for k, v in (env or {}).items()})
        sys.argv = ["vcm", *map(str, args)]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main([str(a) for a in args])
            except SystemExit as ex:
                code = ex.code if isinstance(ex.code, int) else (0 if ex.code is None else 1)
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for s, handler in handlers.items():
            signal.signal(s, handler)
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        progress.set_quiet(quiet)
    text = [stream.buffer.getvalue().decode("utf-8") for stream in (out, err)]
    return subprocess.CompletedProcess(["vcm", *map(str, args)], code, *text)


BLOCKING_RUNNER = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in BLOCKED:
            raise ImportError("blocked module imported: " + name)
sys.meta_path.insert(0, Block())
sys.argv = ["vcm"] + sys.argv[2:]
from vcm.cli import main
main()
"""


def run_blocked(blocked: list[str], *args):
    """Run the real entry point in a subprocess in which importing any of the modules ``blocked`` fails."""
    return subprocess.run([sys.executable, "-c", BLOCKING_RUNNER, ",".join(blocked), *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def reseal(data: bytes, tag: bytes, new_payload: bytes) -> bytes:
    """Replace one section's payload and fix its length and CRC (exercises the inner parsers)."""
    pos = 6
    out = bytearray(data[:6])
    while pos + 8 <= len(data):
        t = data[pos:pos + 4]
        (n,) = struct.unpack_from("<I", data, pos + 4)
        payload = data[pos + 8:pos + 8 + n]
        if t == tag:
            payload = new_payload
        out += t + struct.pack("<I", len(payload)) + payload + struct.pack("<I", zlib.crc32(t + payload) & 0xFFFFFFFF)
        pos += 12 + n
    out += data[pos:]  # a cut through a section's tag or length stays cut: the decoder must refuse it
    return bytes(out)


def section(data: bytes, tag: bytes) -> bytes:
    pos = 6
    while pos + 8 <= len(data):
        (n,) = struct.unpack_from("<I", data, pos + 4)
        if data[pos:pos + 4] == tag:
            return data[pos + 8:pos + 8 + n]
        pos += 12 + n
    raise KeyError(tag)


def progress_gaps(stderr: str) -> list[float]:
    """Seconds between consecutive timestamped progress lines (``HH:MM:SS ...``) of a piped run."""
    import re

    stamps = [int(h) * 3600 + int(m) * 60 + int(sec) for h, m, sec in re.findall(r"^(\d\d):(\d\d):(\d\d) ", stderr, re.M)]
    return [(b - a) % 86400 for a, b in zip(stamps, stamps[1:])]


def head_json(blob: bytes) -> dict:
    """A stream's HEAD payload as JSON, whether written with vcm's preset header dictionary or not."""
    from vcm.bitstream import container
    from vcm.codec.nerv_stream import HEADER_DICT

    return container.read_header(blob, "test", HEADER_DICT)
