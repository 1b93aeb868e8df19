"""Layering: decoders never import training (a decoder ships without the trainer's code paths)."""

import ast
import subprocess
import sys
from pathlib import Path

import torch

from tests.conftest import BLOCKING_RUNNER, run_blocked, run_cli

TRAINING = ["vcm.nerv.train", "vcm.nerv.rate_aware", "vcm.nerv.loss", "vcm.nerv.sa_loss", "vcm.codec.rd",
            "vcm.codec.affine", "vcm.codec.compress", "vcm.codec.prune", "vcm.icm.train"]


def test_the_blocker_blocks():
    """The check itself can fail: importing the compressor (which trains) under it is refused."""
    code = BLOCKING_RUNNER.replace("from vcm.cli import main\nmain()", "import vcm.codec.compress")
    proc = subprocess.run([sys.executable, "-c", code, ",".join(TRAINING)], capture_output=True, text=True)
    assert proc.returncode != 0 and "blocked module imported: vcm.codec" in proc.stderr


def test_vcm_decode_imports_no_training_module(tiny_run, tmp_path):
    root, _ = tiny_run
    from vcm.codec.compress import RDOptions, compress_many

    compress_many(root / "run", [RDOptions(lam=1.0, steps=2)], torch.device("cpu"), outs=[tmp_path / "s.nerv"])
    proc = run_blocked(TRAINING, "decode", tmp_path / "s.nerv", "--out", tmp_path / "s.yuv", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "s.yuv").stat().st_size > 0


def test_vcm_info_on_a_video_or_a_mask_file_imports_no_torch(tmp_path):
    """`vcm info clip.yuv` took 2.7 s, 2.2 of them importing torch to learn whether the file was a run folder."""
    from tests.conftest import moving_frames, run_main
    from vcm.video.yuv import write_yuv420

    write_yuv420(tmp_path / "clip_48x32_25.yuv", moving_frames(t=2, h=32, w=48))
    made = run_main("masks", tmp_path / "clip_48x32_25.yuv", "--source", "canny", "--out", tmp_path / "m.npz")
    assert made.returncode == 0, made.stderr
    for target in (tmp_path / "clip_48x32_25.yuv", "sample:carphone", tmp_path / "m.npz"):
        proc = run_blocked(["torch"], "info", target, "--json")
        assert proc.returncode == 0, proc.stderr[-2000:]


def test_vcm_icm_decode_imports_no_training_module(tmp_path):
    from vcm.icm.archs import TINY
    from vcm.icm.tcm import TCM

    torch.manual_seed(0)
    model = TCM(TINY)
    model.update(force=True)
    ckpt = tmp_path / "tiny.pth.tar"
    torch.save({"arch": "tcm-tiny", "config": TINY.to_dict(), "state_dict": model.state_dict()}, ckpt)
    from tests.conftest import moving_frames
    from vcm.video.yuv import write_yuv420

    write_yuv420(tmp_path / "c_64x64_25.yuv", moving_frames(t=1, h=64, w=64))
    enc = run_cli("icm", "encode", tmp_path / "c_64x64_25.yuv", "--checkpoint", ckpt, "--out", tmp_path / "c.icm")
    assert enc.returncode == 0, enc.stderr[-2000:]
    proc = run_blocked(TRAINING, "icm", "decode", tmp_path / "c.icm", "--checkpoint", ckpt, "--out", tmp_path / "c.yuv")
    assert proc.returncode == 0, proc.stderr[-2000:]
    # what a stream declares is read from its header alone: no network code (CompressAI took 5 s to import)
    info = run_blocked(["compressai", "torch"], "info", tmp_path / "c.icm", "--json")
    assert info.returncode == 0 and '"codec": "vcm ICM (tcm-tiny)"' in info.stdout, info.stderr[-2000:]


def import_graph(root: Path = Path(__file__).parents[1] / "vcm") -> dict[str, set[str]]:
    """Module → the vcm modules it imports anywhere in its code (lazy imports inside functions count:
    they are dependencies all the same). ``from pkg import sub`` depends on ``pkg.sub``, not on ``pkg``."""
    mods = {}
    for f in root.rglob("*.py"):
        name = ".".join(f.relative_to(root.parent).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = f
    graph = {m: set() for m in mods}
    for m, f in mods.items():
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in mods]
                targets = subs or [node.module]
            else:
                continue
            graph[m] |= {t for t in targets if t in mods and t != m}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_circles_in_vcm():
    assert cycles(import_graph()) == []


def test_the_circle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The module graph folded onto packages (``vcm.codec.rd`` → ``vcm.codec``; top-level modules stay)."""
    def package(m: str) -> str:
        return ".".join(m.split(".")[:2])

    folded: dict[str, set[str]] = {}
    for m, targets in graph.items():
        folded.setdefault(package(m), set()).update(package(t) for t in targets if package(t) != package(m))
    return folded


def test_no_import_circles_between_packages():
    """Packages form layers too: e.g. the mask sources use detectors, so detectors may not reach
    back into evaluation, which decodes streams through the codecs that fit with masks."""
    assert cycles(package_graph(import_graph())) == []


def test_package_folding_keeps_a_circle_between_packages():
    graph = {"vcm.a.x": {"vcm.b.y"}, "vcm.b.y": set(), "vcm.b.z": {"vcm.a.w"}, "vcm.a.w": set()}
    assert cycles(package_graph(graph)) == [["vcm.a", "vcm.b"]]


# docs/architecture.md's layers, lowest first: a module may import its own layer and those before it.
# Each entry is a module or a package prefix; the longest prefix that matches places a module.
LAYERS = [
    ["vcm.errors", "vcm.fsutil", "vcm.progress", "vcm.schema", "vcm.registry", "vcm.resources", "vcm.provenance",
     "vcm.rate", "vcm.device", "vcm.outputs", "vcm.samples", "vcm.sequences", "vcm"],
    ["vcm.video", "vcm.quality"],
    ["vcm.bitstream"],
    ["vcm.detectors"],
    ["vcm.nerv"],  # the representations: registry, model, hinerv, frames, config, presets
    ["vcm.entropy_models"],
    ["vcm.nerv.train", "vcm.nerv.rate_aware", "vcm.nerv.loss", "vcm.nerv.sa_loss", "vcm.nerv.sa_loss_triton",
     "vcm.nerv.run", "vcm.nerv.budget", "vcm.masks"],
    ["vcm.codec"],
    ["vcm.icm"],
    ["vcm.anchors"],
    ["vcm.codecs"],
    ["vcm.eval"],
    ["vcm.ctc", "vcm.demo"],
    ["vcm.cli", "vcm.__main__"],
]


def layer_of(module: str) -> int:
    best = max(((len(p), i) for i, layer in enumerate(LAYERS) for p in layer
                if module == p or module.startswith(p + ".")), default=None)
    assert best is not None, f"{module} is in no layer of docs/architecture.md"
    return best[1]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} -> {t}" for m, targets in graph.items() for t in targets if layer_of(t) > layer_of(m))


def test_imports_only_point_down_the_layers():
    assert upward_imports(import_graph()) == []


def test_an_upward_import_is_found():
    assert upward_imports({"vcm.video.io": {"vcm.codec.rd"}, "vcm.codec.rd": {"vcm.video.io"}}) == \
        ["vcm.video.io -> vcm.codec.rd"]
