"""Whether the packages installed beside vcm are the versions it declares (``pyproject.toml``'s dependencies, read
back from vcm's installed metadata, so that the declaration is the one place they are written)."""

from __future__ import annotations

import functools
from importlib import metadata


def unmet_requirements_line() -> str:
    """One line naming the dependencies installed at versions vcm does not declare and how to install the right
    ones; empty where all are met, or where they cannot be read (it is said beside an error, never instead of
    one). Read only when asked: it costs ~90 ms, a third of `vcm info`'s time."""
    try:
        unmet = unmet_requirements()
    except Exception:  # noqa: BLE001 - packaging absent, metadata unreadable
        return ""
    if not unmet:
        return ""
    wanted = " ".join(f"'{req}'" for _, req in unmet)
    return (f"vcm's dependencies are not the versions it needs: {'; '.join(phrase for phrase, _ in unmet)}; install "
            f"them (pip install {wanted}, or uv sync in a checkout of vcm)")


@functools.lru_cache(maxsize=1)
def unmet_requirements(distribution: str = "vcm") -> tuple[tuple[str, str], ...]:
    """Each dependency of ``distribution`` (extras left out, markers of this platform applied) that is installed
    at a version its specifier excludes, or not installed → ``(phrase, requirement)`` pairs, e.g.
    ``("torch 2.4.1+cu121 where vcm needs torch>=2.6", "torch>=2.6")``. Empty where all are met, or where
    ``distribution`` is not installed (a source tree on ``PYTHONPATH``): nothing to read the declaration from.

    A torch installed after vcm (``pip install torch==2.4.1`` for a cluster's CUDA: pip warns, and installs it)
    lacks functions vcm calls, and each command failed in its own way, a checkpoint "damaged" where
    ``torch.serialization.safe_globals`` was missing."""
    from packaging.requirements import InvalidRequirement, Requirement  # ~80 ms: imported only when asked
    from packaging.version import InvalidVersion

    try:
        declared = metadata.requires(distribution) or []
    except metadata.PackageNotFoundError:
        return ()
    unmet = []
    for text in declared:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        try:
            have = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            unmet.append((f"{req.name} is not installed", _bare(req)))
            continue
        try:
            met = req.specifier.contains(have, prereleases=True)
        except InvalidVersion:
            continue
        if not met:
            unmet.append((f"{req.name} {have} where vcm needs {_bare(req)}", _bare(req)))
    return tuple(unmet)


def _bare(req) -> str:
    """A ``packaging`` requirement as pip takes it: name and versions, without its platform marker."""
    return f"{req.name}{req.specifier}"
