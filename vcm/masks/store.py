"""Edge-mask files: bit-packed per-frame masks plus the metadata that says what made them.

File (``.npz``): ``packed`` = ``uint8 [T, ceil(H·W/8)]`` (``np.packbits`` of each frame's mask,
row-major) and ``meta`` = UTF-8 JSON bytes with ``format``, ``width``, ``height``,
``source_frames`` [a, b), ``video_fingerprint``, ``alpha``, ``sam_model``,
``checkpoint_fingerprint`` and the generator settings.

While masks are being made, finished frames live in ``<file>.partial/`` (one packed ``.npy`` per
frame, written atomically); an interrupted run continues from there.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np

from vcm.errors import VcmError
from vcm.fsutil import atomic_path, write_bytes, write_json
from vcm.schema import whole_number
from vcm.video import Video

FORMAT = "vcm-edge-masks/1"


def pack(mask: np.ndarray) -> np.ndarray:
    return np.packbits(np.asarray(mask, dtype=bool).ravel())


def unpack(packed: np.ndarray, height: int, width: int) -> np.ndarray:
    return np.unpackbits(packed, count=height * width).reshape(height, width).astype(bool)


def save_masks(path: Path, masks: np.ndarray, meta: dict) -> None:
    """Write ``bool [T,H,W]`` masks atomically."""
    t, h, w = masks.shape
    packed = np.stack([pack(m) for m in masks])
    meta = {"format": FORMAT, **meta, "width": w, "height": h}
    archive = io.BytesIO()  # numpy's archive, left open by a failed write, complained when collected
    np.savez_compressed(archive, packed=packed, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    write_bytes(path, archive.getvalue())


def load_masks(path: Path) -> tuple[np.ndarray, dict]:
    """Read a mask file → (``uint8 [T,1,H,W]`` in {0,1}, meta)."""
    path = Path(path)
    if not path.is_file():
        raise VcmError(f"mask file {path} does not exist; make one with vcm masks")
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = _meta_of(z)
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                fmt = meta.get("format") if isinstance(meta, dict) else None
                raise VcmError(f"{path} is not a vcm edge-mask file (format {fmt!r})")
            _check_meta(meta, path)
            _check_declared(meta, _declared_shape(z, "packed"), path)  # before the array is allocated
            packed = z["packed"]
    except VcmError:
        raise
    except Exception:
        raise VcmError(f"{path} is not a vcm edge-mask file") from None
    h, w = meta["height"], meta["width"]
    masks = np.stack([unpack(p, h, w) for p in packed]).astype(np.uint8)[:, None]
    return masks, meta


_MAX_META = 1 << 20  # bytes of JSON metadata; a real file's is under 2 KB


def _meta_of(z):
    """The parsed JSON metadata of an open mask ``.npz``, its declared size bounded before it is read."""
    if np.prod(_declared_shape(z, "meta"), dtype=np.int64) > _MAX_META:
        raise ValueError("metadata too large")
    return json.loads(bytes(z["meta"]).decode())


def _declared_shape(z, name: str) -> tuple[int, ...]:
    """The shape the ``.npy`` member ``name`` of an open ``.npz`` declares, read from its header alone (a
    compressed member can declare gigabytes in a few bytes; numpy allocates what it declares)."""
    with z.zip.open(name + ".npy") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
    if dtype != np.uint8:
        raise ValueError(f"{name} is {dtype}, not uint8")
    return tuple(shape)


def _check_declared(meta: dict, shape: tuple[int, ...], path: Path) -> None:
    """The packed array must have the shape its metadata declares, and the unpacked masks
    (``uint8 [T, 1, H, W]``) must fit the memory budget (``VCM_MEMORY_BUDGET``)."""
    from vcm.bitstream.budget import memory_budget
    from vcm.words import human

    h, w = meta["height"], meta["width"]
    a, b = meta["source_frames"]
    if shape != (b - a, (h * w + 7) // 8):
        raise VcmError(f"{path} is damaged (mask array does not match its metadata)")
    need, budget = (b - a) * h * w * 9 // 8, memory_budget()
    if need > budget:
        raise VcmError(f"{path} declares {b - a} masks of {w}x{h}, which would need {human(need)} to read, more than "
                       f"the memory budget of {human(budget)}; set VCM_MEMORY_BUDGET (e.g. 16G) if it is genuine")


def check_mask_output(path: Path) -> None:
    """Refuse to write masks over ``path`` when it holds something else than a vcm edge-mask file (a mask file
    is made again from the same inputs; a user's own .npz was replaced without a word)."""
    from vcm.outputs import check_own

    check_own(path, is_mask_file, "a vcm edge-mask file")


def read_meta(path: Path) -> dict | None:
    """The metadata of the vcm edge-mask file at ``path`` (its masks are not read), or None if it is not one."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = _meta_of(z)
    except Exception:
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == FORMAT else None


def is_mask_file(path: Path) -> bool:
    return read_meta(path) is not None


# What a differing metadata key means to the user (the rest are named as they are).
_KEY_WORDS = {"video_fingerprint": "frames (their content)", "checkpoint_fingerprint": "SAM weights",
              "source_frames": "source frames", "sam_model": "SAM model", "alpha": "α",
              "detector_settings": "detector settings"}


def kept_masks(path: Path, meta: dict, overwrite: bool = False,
               hint: str = "pass --overwrite to replace them, or name another --out") -> bool:
    """Whether the mask file at ``path`` already holds what ``meta`` (the metadata a new run would write)
    describes, so that it is reused as it is: made again it would be the same, and SAM takes minutes a frame
    on a CPU. A mask file made otherwise is refused unless ``overwrite``; without a file, False."""
    path = Path(path)
    if overwrite or not path.exists():
        return False
    saved = read_meta(path)
    if saved is None:
        check_mask_output(path)  # refuses it: a file that is not a mask file is never replaced
        saved = {}
    differs = [k for k in meta if k != "checkpoint" and saved.get(k) != json.loads(json.dumps(meta[k]))]
    if not differs:
        return True
    if {"video", "source_frames"} & set(differs):  # other frames have other content: said once
        differs = [k for k in differs if k != "video_fingerprint"]
    raise VcmError(f"{path} holds edge masks made with other {', '.join(_KEY_WORDS.get(k, k) for k in differs)}; "
                   f"{hint}")


def _check_meta(meta: dict, path: Path) -> None:
    """The fields a mask file must carry, with their types: one clear line for a damaged file."""
    for key in ("width", "height"):
        if not (whole_number(meta.get(key)) and 0 < meta[key] <= 1 << 16):
            raise VcmError(f"{path} is damaged (metadata field {key!r} missing or invalid)")
    src = meta.get("source_frames")
    if not (isinstance(src, list) and len(src) == 2 and all(map(whole_number, src)) and 0 <= src[0] < src[1]):
        raise VcmError(f"{path} is damaged (metadata field 'source_frames' missing or invalid); make it again with vcm masks")
    if not isinstance(meta.get("video_fingerprint"), str):
        raise VcmError(f"{path} is damaged (metadata field 'video_fingerprint' missing)")


def check_matches(meta: dict, video: Video, path: Path) -> None:
    """Refuse masks made for other frames: size, source range and content must all agree."""
    if (meta["width"], meta["height"]) != (video.width, video.height):
        raise VcmError(f"{path.name} holds {meta['width']}x{meta['height']} masks, the video is {video.width}x{video.height}")
    want = [video.source_frames.start, video.source_frames.stop]
    if list(meta["source_frames"]) != want:
        raise VcmError(f"{path.name} covers source frames {meta['source_frames'][0]}:{meta['source_frames'][1]}, "
                       f"the video frames are {want[0]}:{want[1]}; make masks with the same --frames")
    if meta.get("video_fingerprint") != video.fingerprint():
        raise VcmError(f"{path.name} was made from different frames (video fingerprint differs)")


def load_masks_for_video(path: Path, video: Video) -> np.ndarray:
    masks, meta = load_masks(path)
    check_matches(meta, video, Path(path))
    return masks


class PartialMasks:
    """Per-frame progress of a mask run in ``<file>.partial/``; reset when the settings differ."""

    def __init__(self, final: Path, meta: dict):
        self.dir = Path(str(final) + ".partial")
        self.meta = meta
        meta_file = self.dir / "meta.json"
        if self.dir.exists():
            try:
                same = json.loads(meta_file.read_text()) == json.loads(json.dumps(meta))
            except (OSError, ValueError):
                same = False
            if not same:
                shutil.rmtree(self.dir)  # progress of another configuration: a cache, not user data
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json(meta_file, meta)

    def _file(self, index: int) -> Path:
        return self.dir / f"frame_{index:06d}.npy"

    def has(self, index: int) -> bool:
        return self._file(index).exists()

    def put(self, index: int, mask: np.ndarray) -> None:
        with atomic_path(self._file(index)) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, pack(mask))

    def get(self, index: int, height: int, width: int) -> np.ndarray:
        return unpack(np.load(self._file(index)), height, width)

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
