"""A PNG of a rendered report, taken by headless Chromium (``vcm ctc report --screenshot``).

Chromium is found as ``VCM_CHROMIUM``, ``chromium``, ``chromium-browser`` or ``google-chrome`` on
the PATH (Debian: ``apt-get install chromium``). It runs with a fresh profile and no network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from vcm.errors import VcmError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    if os.environ.get("VCM_CHROMIUM"):
        return os.environ["VCM_CHROMIUM"]
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


def screenshot(html: Path, png: Path, width: int = 1500, height: int = 2400, timeout: float = 120) -> Path:
    """Render ``html`` (a local file) in headless Chromium and write a ``width``×``height`` PNG."""
    exe = find_chromium()
    if exe is None:
        raise VcmError("no Chromium found for --screenshot: install it (Debian: apt-get install chromium) "
                       "or set VCM_CHROMIUM to its path")
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vcm-chromium-") as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={width},{height}",
               f"--screenshot={png}", Path(html).resolve().as_uri()]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise VcmError(f"Chromium did not render {html} within {timeout:.0f} s") from None
    if proc.returncode or not png.exists():
        raise VcmError(f"Chromium could not render {html}: {(proc.stderr.strip().splitlines() or ['?'])[-1][:200]}")
    return png
