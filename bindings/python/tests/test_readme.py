"""The README's usage example runs, against the test's own redis-server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[3] / "README.md"


def test_readme_example_runs(redis_url: str) -> None:
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "the README has no python example"
    example = blocks[0]
    assert len(example.strip().splitlines()) <= 25
    code = example.replace("redis://127.0.0.1:6379", redis_url)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "welcome ada@example.com attempt 1" in out.stdout
