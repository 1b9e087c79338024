"""A real headless Chromium driven from its command line (no WebDriver download), for page tests.

:func:`load` renders a URL the way a user's browser does (images and all), returns the DOM
after the load event and can save a screenshot. :class:`Page` reads tables and images out of
that DOM. Chromium missing is a test failure, not a skip: CI installs it (``.ci/run``).
"""
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not installed: apt-get install -y chromium (CI's .ci/run installs it)")
    return path


def load(url: str, screenshot: str | None = None, timeout: float = 120) -> "Page":
    """The DOM of ``url`` once loaded; with ``screenshot``, also a 1280x2000 PNG of it there."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        command = [chromium(), *FLAGS, f"--user-data-dir={profile}", "--dump-dom"]
        if screenshot:
            command += [f"--screenshot={screenshot}", "--window-size=1280,2000"]
        done = subprocess.run([*command, url], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0 and "<html" in done.stdout, f"chromium failed on {url}: {done.stderr[-2000:]}"
    return Page(done.stdout)


class Page(HTMLParser):
    """Tables (``tables[id]``: rows of cell texts, header row excluded) and images (``images[id]``: src)."""

    def __init__(self, dom: str):
        super().__init__()
        self.dom = dom
        self.tables: dict[str, list[list[str]]] = {}
        self.images: dict[str, str] = {}
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.feed(dom)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = attrs.get("id", "")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif tag == "img":
            self.images[attrs.get("id", "")] = attrs.get("src", "")

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._row:  # header rows have no <td>
                self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
