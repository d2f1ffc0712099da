"""Golden tests: small specs in codegen/tests/golden/<case>/spec.yaml, expected
files out (exact match), or the expected error for an invalid spec.

Refresh the expected files after an intended change with
`UPDATE_GOLDEN=1 python -m pytest codegen/tests/test_golden.py`, then review the
diff.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from codegen import RenderError, SpecError, generate, load

GOLDEN = Path(__file__).resolve().parent / "golden"
REPO = GOLDEN.parents[2]
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "spec.yaml").exists())
# Outputs of the `python` and `node` templates land under expected/<language>/.
TARGETS = {"python": Path("python"), "node": Path("node")}


def _load(case: str):
    spec_path = GOLDEN / case / "spec.yaml"
    return load(spec_path, spec_path.relative_to(REPO).as_posix())


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    folder = GOLDEN / case
    error_file = folder / "expected_error.txt"
    if error_file.exists():
        # An invalid spec fails to load; a spec missing what one language
        # needs fails to render.
        with pytest.raises((SpecError, RenderError)) as info:
            generate(_load(case), TARGETS)
        for line in error_file.read_text(encoding="utf-8").splitlines():
            assert line in str(info.value)
        return
    outputs = generate(_load(case), TARGETS)
    expected_dir = folder / "expected"
    if os.environ.get("UPDATE_GOLDEN"):
        shutil.rmtree(expected_dir, ignore_errors=True)
        for rel, text in outputs.items():
            (expected_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (expected_dir / rel).write_text(text, encoding="utf-8")
    expected = {
        p.relative_to(expected_dir): p.read_text(encoding="utf-8")
        for p in expected_dir.rglob("*")
        if p.is_file()
    }
    assert sorted(outputs) == sorted(expected)
    for rel, text in outputs.items():
        assert text == expected[rel], f"{case}: {rel} differs from the golden file"


def test_cases_cover_errors_and_outputs() -> None:
    kinds = {(GOLDEN / c / "expected_error.txt").exists() for c in CASES}
    assert kinds == {True, False}
