"""docs/wire-format.md agrees with the vectors, and the check that says so
(wire_doc.py, run by lint.py) fails on each kind of disagreement: a changed
byte, an undocumented key, field, event or reason, a wrong type or TTL, a
documented thing no vector shows."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import wire_doc

DOC = wire_doc.DOC.read_text(encoding="utf-8")
VECTORS = wire_doc.load_vectors()


def problems(doc: str = DOC, vectors: dict[str, Any] | None = None) -> list[str]:
    return wire_doc.check(doc, VECTORS if vectors is None else vectors)


def edited(old: str, new: str) -> str:
    assert DOC.count(old) == 1, f"the page has {old!r} once"
    return DOC.replace(old, new)


def test_the_page_and_the_vectors_agree() -> None:
    assert problems() == []


def test_the_page_has_what_the_check_reads() -> None:
    doc = wire_doc.parse(DOC)
    kinds = {t.kind for t in doc.tables}
    assert {"keys", "reserved", "fields", "events", "dlq-reasons"} <= kinds
    assert len(doc.examples) >= 5
    assert {e.vector for e in doc.examples} >= {
        "immediate/named",
        "retry_override/exponential",
        "repeatable/stored_spec",
    }


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        # A byte of an example.
        (
            "cd 27 10                                 max_delay_ms",
            "cd 27 11                                 max_delay_ms",
            "the bytes differ from retry_override/exponential",
        ),
        # A byte missing from an example.
        ("05                                       max_attempts 5\n", "", "bytes differ"),
        # A key's type, its TTL, its row.
        ("| `delayed` | zset |", "| `delayed` | stream |", "is a zset"),
        ("| `dlq` | stream | — |", "| `dlq` | stream | EX 1 |", "has no TTL"),
        ("| `didx:<job_id>` |", "| `didy:<job_id>` |", "is in no keys table"),
        # A row's vector.
        ("| `results/stored` |", "| `results/none_not_stored` |", "holds no such key"),
        ("| Lifecycle events (below), `MAXLEN ~ 100000`. Not written when a worker runs with events off. | `events/completed` |",
         "| Lifecycle events (below), `MAXLEN ~ 100000`. Not written when a worker runs with events off. | — |",
         "says no vector holds it"),
        # A reserved name in use.
        ("| `limiter` |", "| `result:<job_id>` |", "reserved name"),
        # Stream fields: order, an unlisted one, a listed one nobody writes.
        (
            "| `d` | the envelope (below), msgpack bytes | always |\n"
            "| `n` | the job name, UTF-8, at most 256 bytes | only when the name is not empty |",
            "| `n` | the job name | only when the name is not empty |\n"
            "| `d` | the envelope | always |",
            "are not in the order",
        ),
        ("| `detail` |", "| `details` |", "does not list"),
        ("| `reason` | one of", "| `why` | one of", "does not list"),
        # An event's fields, an event kind, a DLQ reason.
        ("| `attempt`, `duration_us` |", "| `duration_us`, `attempt` |", "event 'completed' has fields"),
        ("| `drained` |", "| `emptied` |", "event 'drained' is not in"),
        ("| `stalled` | taken over", "| `stuck` | taken over", "DLQ reason 'stalled'"),
    ],
)  # fmt: skip
def test_each_disagreement_is_a_problem(old: str, new: str, says: str) -> None:
    found = problems(edited(old, new))
    assert any(says in p for p in found), found


def test_a_new_key_in_a_vector_needs_a_row() -> None:
    vectors = copy.deepcopy(VECTORS)
    vectors["results/stored"]["expect_redis"]["{chasqui:res}:paused"] = {
        "type": "string",
        "ttl_ms": -1,
        "value": "1",
    }
    vectors["results/stored"]["expect_redis"]["{chasqui:res}:meta"] = {
        "type": "hash",
        "ttl_ms": -1,
        "fields": {},
    }
    found = problems(vectors=vectors)
    assert any("reserved name 'paused'" in p for p in found), found
    assert any("'{chasqui:res}:meta' is in no keys table" in p for p in found), found


def test_a_new_event_field_in_a_vector_needs_the_page() -> None:
    vectors = copy.deepcopy(VECTORS)
    entries = vectors["events/completed"]["expect_redis"]["{chasqui:ev}:events"][
        "entries"
    ]
    done = next(e for e in entries if e["fields"]["e"] == "completed")
    done["fields"]["result_bytes"] = "3"
    found = problems(vectors=vectors)
    assert any("event 'completed' has fields" in p for p in found), found


def test_a_hex_line_that_is_not_bytes_is_a_problem() -> None:
    found = problems(
        edited("c4 01 05                                 bin of 1", "c4 01 5  bin")
    )
    assert any("'5' is not a hex byte" in p for p in found), found
