"""Video input/output: raw YUV, containers, image folders; one colour conversion."""

from vcm.video.source import Video, VideoInfo, load, open_video, probe, resolve_frames
from vcm.video.writer import write_video

__all__ = ["Video", "VideoInfo", "load", "open_video", "probe", "resolve_frames", "write_video"]
