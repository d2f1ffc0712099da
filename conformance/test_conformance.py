"""The conformance suite: every vector in every language, then cross pairs.

- `test_vector[<lang>-<id>]`: the vector run by one driver matches its
  expectation (results, error codes, Redis contents after scrubbing).
- `test_parity[<id>]`: the Python and Node documents are identical.
- `test_cross[<producer>-><consumer>-<id>]` (vectors with `"cross": true`):
  the producer language runs the `produce` and `verify` phases, the other
  language the `consume` phase (its worker's handler observations and the
  final Redis state must match the same expectation).

`known_gaps.json` lists cases expected to fail, per language, with a
reason; such a case is an xfail, and one that passes fails the run so the
list cannot go stale. One redis-server and one driver process per language
serve the whole session.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import runner

VECTORS = runner.load_vectors()
IDS = [v["id"] for _, v in VECTORS]
BY_ID = {v["id"]: v for _, v in VECTORS}
CROSS = [v["id"] for _, v in VECTORS if v.get("cross")]
DIRECTIONS = [("python", "node"), ("node", "python")]
GAPS: dict[str, dict[str, str]] = json.loads(
    (Path(__file__).parent / "known_gaps.json").read_text(encoding="utf-8")
)["gaps"]


@pytest.fixture(scope="session")
def env() -> Iterator[tuple[dict[str, runner.Driver], str]]:
    with runner.environment(set(runner.LANGS)) as e:
        yield e


_docs: dict[tuple[str, ...], dict[str, Any]] = {}


def _doc(env: Any, vector_id: str, langs: dict[str, str]) -> dict[str, Any]:
    key = (vector_id, *(langs[p] for p in runner.PHASES))
    if key not in _docs:
        drivers, url = env
        vector = BY_ID[vector_id]
        raw = runner.run_vector(vector, drivers, url, langs)
        _docs[key] = runner.actual_doc(vector, raw)
    return _docs[key]


def _check(gap_key: str, vector_id: str, problem: str) -> None:
    """Fails on a problem, xfails a listed gap, fails a listed gap that passed."""
    reason = GAPS.get(gap_key, {}).get(vector_id)
    if reason is None:
        assert not problem, problem
    elif problem:
        pytest.xfail(f"known gap ({gap_key}): {reason}")
    else:
        pytest.fail(
            f"{vector_id} passes in {gap_key} but known_gaps.json lists it "
            f"({reason!r}); remove the entry"
        )


@pytest.mark.parametrize("lang", runner.LANGS)
@pytest.mark.parametrize("vector_id", IDS)
def test_vector(env: Any, vector_id: str, lang: str) -> None:
    doc = _doc(env, vector_id, dict.fromkeys(runner.PHASES, lang))
    want = runner.expected_doc(BY_ID[vector_id])
    _check(lang, vector_id, runner.diff(want, doc, "expected", lang))


@pytest.mark.parametrize("vector_id", IDS)
def test_parity(env: Any, vector_id: str) -> None:
    py = _doc(env, vector_id, dict.fromkeys(runner.PHASES, "python"))
    node = _doc(env, vector_id, dict.fromkeys(runner.PHASES, "node"))
    _check("parity", vector_id, runner.diff(py, node, "python", "node"))


@pytest.mark.parametrize(
    "direction", DIRECTIONS, ids=[f"{a}->{b}" for a, b in DIRECTIONS]
)
@pytest.mark.parametrize("vector_id", CROSS)
def test_cross(env: Any, vector_id: str, direction: tuple[str, str]) -> None:
    producer, consumer = direction
    langs = {"produce": producer, "consume": consumer, "verify": producer}
    doc = _doc(env, vector_id, langs)
    want = runner.expected_doc(BY_ID[vector_id])
    _check(
        f"{producer}->{consumer}",
        vector_id,
        runner.diff(want, doc, "expected", f"{producer}->{consumer}"),
    )
