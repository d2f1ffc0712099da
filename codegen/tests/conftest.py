"""Shared fixtures: the repository paths and a native-free `chasquimq` package.

Importing `chasquimq` runs its __init__, which needs the compiled `_native`
module. These tests need none of it: `chasquimq_pkg` registers a bare package
object for the source folder, so its submodules (`_validate`, `_generated.*`)
import without running `chasquimq/__init__.py`.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PKG_DIR = REPO / "bindings" / "python" / "python" / "chasquimq"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _drop_chasquimq() -> dict[str, types.ModuleType]:
    saved = {
        name: module
        for name, module in sys.modules.items()
        if name == "chasquimq" or name.startswith("chasquimq.")
    }
    for name in saved:
        del sys.modules[name]
    return saved


@pytest.fixture
def chasquimq_pkg() -> Iterator[types.ModuleType]:
    """A fresh `chasquimq` package without the native module; restored after."""
    saved = _drop_chasquimq()
    pkg = types.ModuleType("chasquimq")
    pkg.__path__ = [str(PKG_DIR)]
    sys.modules["chasquimq"] = pkg
    try:
        yield pkg
    finally:
        _drop_chasquimq()
        sys.modules.update(saved)
