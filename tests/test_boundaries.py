"""The platform façade works from the repo root, and worker code never imports driver code."""
import ast
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

WORKER_PACKAGES = ("trainables", "search_spaces")


def _imports(path: str) -> set[str]:
    tree = ast.parse(open(path).read(), path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", WORKER_PACKAGES)
def test_worker_code_imports_neither_platform_nor_soundsweep(package):
    offenders = []
    for folder, _, files in os.walk(os.path.join(REPO, package)):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                bad = _imports(path) & {"platform", "soundsweep"}
                if bad:
                    offenders.append(f"{os.path.relpath(path, REPO)} imports {sorted(bad)}")
    assert not offenders, offenders


def test_platform_facade_re_exports_stdlib_and_lets_torch_ray_pandas_import():
    code = ("import platform, platform.tune; import torch, ray, pandas; "
            "assert platform.__file__.startswith(%r); print(platform.system(), platform.python_version())" % REPO)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[0] == "Linux"


def test_python_m_platform_tune_help_lists_spaces_and_models():
    out = subprocess.run([sys.executable, "-m", "platform.tune", "--help"], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "--space" in out.stdout and "augmentation" in out.stdout
    assert "resnet2d" in out.stdout and "resnet1d" in out.stdout


def test_every_document_the_repo_refers_to_is_in_it():
    import re

    missing = []
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("artifacts", "results", "build")]
        for name in files:
            if name.endswith((".py", ".md", ".toml")):
                path = os.path.join(folder, name)
                for ref in re.findall(r"\b((?:docs/)?[A-Z][A-Za-z_]*\.md)\b", open(path).read()):
                    target = ref if ref.startswith("docs/") or ref == "README.md" else f"docs/{ref}"
                    if not os.path.exists(os.path.join(REPO, target)) and not os.path.exists(os.path.join(REPO, ref)):
                        missing.append(f"{os.path.relpath(path, REPO)}: {ref}")
    assert not missing, missing
