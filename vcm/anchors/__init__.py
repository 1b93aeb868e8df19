"""HEVC / VVC anchors through ffmpeg (libx265, libvvenc), or an external VTM."""
