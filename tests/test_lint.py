"""The tree is lint-clean: ruff's pyflakes, pycodestyle and import-order rules (pyproject.toml)."""
import subprocess
import sys

from tests.conftest import REPO


def test_ruff_reports_nothing():
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", REPO],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
