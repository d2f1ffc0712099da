"""`python -m codegen --check` on the repository and on a temporary copy of it.

The copy holds what the generator reads and writes (codegen/, spec/, ruff.toml,
the Python package and the Node package's TypeScript); the real tree is never
modified.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GENERATED = Path("bindings/python/python/chasquimq")
NODE_GENERATED = Path("bindings/node/ts")


def _codegen(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codegen", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repo")
    ignore = shutil.ignore_patterns("__pycache__", ".pytest_cache", "*.so")
    for name in ("codegen", "spec", "bindings/python/python", "bindings/node/ts"):
        shutil.copytree(REPO / name, root / name, ignore=ignore)
    shutil.copy(REPO / "ruff.toml", root / "ruff.toml")
    shutil.copy(REPO / "bindings/node/index.mjs", root / "bindings/node/index.mjs")
    return root


def test_repository_is_up_to_date() -> None:
    done = _codegen(REPO, "--check")
    assert done.returncode == 0, done.stderr


def test_check_fails_after_a_hand_edit(tree: Path) -> None:
    assert _codegen(tree, "--check").returncode == 0
    edited = tree / GENERATED / "_generated" / "api.py"
    original = edited.read_text(encoding="utf-8")
    edited.write_text(
        original.replace("return await self._add(", "return await self._add2(")
    )
    done = _codegen(tree, "--check")
    assert done.returncode == 1
    assert "bindings/python/python/chasquimq/_generated/api.py (differs)" in done.stderr
    assert "types.py" not in done.stderr

    # Regenerating in place repairs it.
    assert _codegen(tree).returncode == 0
    assert edited.read_text(encoding="utf-8") == original
    assert _codegen(tree, "--check").returncode == 0


def test_check_reports_missing_and_stale_files(tree: Path) -> None:
    (tree / GENERATED / "__init__.pyi").unlink()
    stale = tree / GENERATED / "_generated" / "old.py"
    stale.write_text("x = 1\n")
    done = _codegen(tree, "--check")
    assert done.returncode == 1
    assert "chasquimq/__init__.pyi (missing)" in done.stderr
    assert "_generated/old.py (stale" in done.stderr
    stale.unlink()
    assert _codegen(tree).returncode == 0
    assert _codegen(tree, "--check").returncode == 0


def test_check_covers_the_node_surface(tree: Path) -> None:
    edited = tree / NODE_GENERATED / "_generated" / "api.ts"
    original = edited.read_text(encoding="utf-8")
    edited.write_text(original.replace("return this._add(", "return this._add2("))
    stale = tree / NODE_GENERATED / "_generated" / "old.ts"
    stale.write_text("export {};\n")
    (tree / "bindings/node/index.mjs").unlink()
    done = _codegen(tree, "--check")
    assert done.returncode == 1
    assert "bindings/node/ts/_generated/api.ts (differs)" in done.stderr
    assert "bindings/node/ts/_generated/old.ts (stale" in done.stderr
    assert "bindings/node/index.mjs (missing)" in done.stderr
    stale.unlink()
    assert _codegen(tree).returncode == 0
    assert edited.read_text(encoding="utf-8") == original
    assert _codegen(tree, "--check").returncode == 0


def test_invalid_spec_fails_with_the_path(tree: Path) -> None:
    spec = tree / "spec" / "api.yaml"
    original = spec.read_text(encoding="utf-8")
    spec.write_text(
        original.replace("validate: positive_int", "validate: positve_int", 1)
    )
    try:
        done = _codegen(tree, "--check")
        assert done.returncode == 2
        where = "spec/api.yaml: dataclasses[RepeatPattern].factories[every]"
        assert f"{where}.params[interval_ms].validate: 'positve_int'" in done.stderr
    finally:
        spec.write_text(original)
