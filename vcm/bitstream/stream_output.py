"""Where a command writes a stream: never over its inputs or a run's files, and over an existing file only
when that file is a stream of the same kind (its magic bytes) or, beside it, a stream's report."""

from __future__ import annotations

import os
from pathlib import Path

from vcm.bitstream.container import STREAM_KINDS
from vcm.errors import VcmError
from vcm.outputs import check_output, check_own, json_has_keys


def check_stream_output(path: str | os.PathLike, suffix: str, *, inputs=(), protected=()) -> Path:
    """A bitstream output: named ``*<suffix>``, and neither it nor the ``.json`` report written
    beside it may replace an input, a protected file, or a file vcm did not write (a stream of another
    kind, a JSON that is not a stream's report)."""
    path = Path(path)
    if path.suffix != suffix:
        raise VcmError(f"--out {path}: a bitstream file name must end in {suffix} (its report goes beside it as .json)")
    inputs, protected = list(inputs), list(protected)
    check_output(path, inputs=inputs, protected=protected, kind="file")
    check_output(path.with_suffix(".json"), inputs=inputs, protected=protected, kind="file", option="--out (its report)")
    check_own_stream(path)
    check_own(path.with_suffix(".json"), lambda p: json_has_keys(p, {"bitstream"}), "a stream's report",
              option="--out (its report)")
    return path


def check_own_stream(path: str | os.PathLike) -> None:
    """Refuse to write a stream over a file that is not a stream of the kind its suffix names (its magic bytes,
    ``vcm.bitstream.container.STREAM_KINDS``)."""
    magic, kind = STREAM_KINDS[Path(path).suffix]
    check_own(path, lambda p: _starts_with(p, magic), f"a {kind} bitstream")


def _starts_with(path: Path, magic: bytes) -> bool:
    with open(path, "rb") as f:
        return f.read(len(magic)) == magic
