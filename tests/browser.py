"""Headless Chromium (Debian's `chromium`, installed by hack/setup-services.sh) for tests that
assert on what a browser shows: `visible_text` returns the page's rendered text (the DOM after
layout; the pages carry no script), `screenshot` a PNG."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-extensions",
)


def chromium() -> str:
    """The Chromium binary; fails (never skips) when it is missing."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise AssertionError("chromium is not installed: run hack/setup-services.sh as root")


def dump_dom(page: Path, timeout: float = 60.0) -> str:
    """The page's DOM as Chromium serialises it after loading `page`."""
    result = subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, "--dump-dom", page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return result.stdout


def visible_text(page: Path) -> str:
    """The text of the rendered page (tags stripped, whitespace collapsed), SVG text included."""
    dom = dump_dom(page)
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.DOTALL | re.IGNORECASE)
    text = html.unescape(re.sub(r"<[^>]+>", " ", dom))
    return re.sub(r"\s+", " ", text).strip()


def screenshot(page: Path, out: Path, width: int = 1280, height: int = 2000) -> Path:
    """A PNG of `page` as Chromium renders it."""
    subprocess.run(
        [
            chromium(),
            *CHROMIUM_FLAGS,
            f"--screenshot={out.resolve()}",
            f"--window-size={width},{height}",
            "--hide-scrollbars",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    if not out.exists() or out.stat().st_size == 0:
        raise AssertionError(f"chromium wrote no screenshot of {page}")
    return out
