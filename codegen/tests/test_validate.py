"""The rules of chasquimq/_validate.py: good and bad input for every rule.

Each failure must be an InvalidTypeError (a TypeError) or InvalidArgumentError
(a ValueError) whose message names the field and says how to fix it, and no
message may echo a Redis URL's password.
"""

from __future__ import annotations

import importlib
import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

T, A = "type", "argument"  # expected failure: InvalidTypeError / InvalidArgumentError


@pytest.fixture
def v(chasquimq_pkg: ModuleType) -> ModuleType:
    return importlib.import_module("chasquimq._validate")


@pytest.fixture
def t(chasquimq_pkg: ModuleType) -> ModuleType:
    return importlib.import_module("chasquimq._generated.types")


class IntSub(int):
    pass


def _values(t: ModuleType) -> dict[str, Any]:
    return {
        "pattern": t.RepeatPattern(kind="every", interval_ms=1000),
        "backoff": t.BackoffSpec(kind="fixed", delay_ms=10),
        "policy": t.MissedFiresPolicy(kind="skip"),
    }


# rule -> (accepted values, [(rejected value, expected failure)])
CASES: dict[str, tuple[list[Any], list[tuple[Any, str]]]] = {
    "str_": (["", "x"], [(1, T), (None, T), (b"x", T)]),
    "non_empty_str": (["x", " x "], [("", A), ("  \t", A), (3, T)]),
    "bool_": ([True, False], [(1, T), ("true", T), (None, T)]),
    "int_": ([0, -5, 10**30, IntSub(3)], [(True, T), (1.0, T), ("1", T)]),
    "positive_int": ([1, 10**12], [(0, A), (-1, A), (True, T), (1.5, T), ("1", T)]),
    "non_negative_int": ([0, 7], [(-1, A), (False, T), (0.0, T)]),
    "positive_number": (
        [1, 0.001, 2.5],
        [(0, A), (-1.0, A), (math.nan, A), (math.inf, A), (True, T), ("1", T)],
    ),
    "callable_": ([len, lambda: None], [(None, T), ("f", T)]),
    "handler": ([len], [(None, T), (42, T)]),
    "queue_name": (
        ["emails", "a" * 256, "ñ" * 128, "with space"],
        [
            ("", A),
            ("   ", A),
            ("a{b", A),
            ("a}b", A),
            ("a" * 257, A),
            ("ñ" * 129, A),
            ("\ud800", A),
            (5, T),
        ],
    ),
    "job_name": (
        ["", "send-email", "é" * 128],
        [("x" * 257, A), ("é" * 129, A), (None, T)],
    ),
    "job_id": (
        ["order-42", "a" * 256, "ü-1"],
        [
            ("", A),
            (" \n", A),
            ("a\nb", A),
            ("a\x00", A),
            ("a\x7f", A),
            ("a" * 257, A),
            (42, T),
        ],
    ),
    "job_ids": (
        [[], ["a", "b"], ("a",)],
        [("abc", T), ([1], T), (["a", ""], A), (None, T)],
    ),
    "stream_id": (
        ["$", "0", "1700000000000-0", "12"],
        [("", A), ("abc", A), ("1-", A), (0, T)],
    ),
    "redis_url": (
        [
            "redis://127.0.0.1:6379",
            "redis://localhost",
            "rediss://user:pw@host:6380/2",
            "redis://:pw@host/0",
            "redis://[::1]:6379",
            "redis://host:6379/",
        ],
        [
            ("http://host:6379", A),
            ("redis://", A),
            ("redis://host:0", A),
            ("redis://host:70000", A),
            ("redis://host:port", A),
            ("redis://host/db", A),
            ("localhost:6379", A),
            (b"redis://x", T),
        ],
    ),
    "delay_ms": (
        [0, 5, 1.5, datetime(2030, 1, 1), datetime(2030, 1, 1, tzinfo=timezone.utc)],
        [
            (-1, A),
            (-0.5, A),
            (math.nan, A),
            (math.inf, A),
            ("5", T),
            (True, T),
            (timedelta(1), T),
        ],
    ),
    "timedelta": (
        [timedelta(0), timedelta(seconds=5)],
        [(timedelta(seconds=-1), A), (5, T)],
    ),
}


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule(v: ModuleType, rule: str) -> None:
    good, bad = CASES[rule]
    check = getattr(v, rule)
    for value in good:
        assert check("field_x", value) is None
    for value, kind in bad:
        _assert_fails(v, check, value, kind)


def _assert_fails(
    v: ModuleType, check: Any, value: Any, kind: str, field: str = "field_x"
) -> str:
    expected = v.InvalidTypeError if kind == T else v.InvalidArgumentError
    builtin = TypeError if kind == T else ValueError
    with pytest.raises(expected) as info:
        check(field, value)
    err = info.value
    assert isinstance(err, builtin)
    assert type(err).code == ("invalid_type" if kind == T else "invalid_argument")
    message = str(err)
    assert message.startswith(field), message
    assert "; " in message, f"no fix in {message!r}"
    return message


def test_value_type_rules(v: ModuleType, t: ModuleType) -> None:
    vals = _values(t)
    v.backoff_like("backoff", 0)
    v.backoff_like("backoff", vals["backoff"])
    v.backoff_like("backoff", {"kind": "fixed", "delay_ms": 5})
    _assert_fails(v, v.backoff_like, -1, A, "backoff")
    _assert_fails(v, v.backoff_like, "fast", T, "backoff")
    _assert_fails(v, v.backoff_like, True, T, "backoff")
    _assert_fails(v, v.backoff_like, vals["pattern"], T, "backoff")

    v.repeat_like("repeat", vals["pattern"])
    v.repeat_like("repeat", {"kind": "every", "interval_ms": 5})
    _assert_fails(v, v.repeat_like, "* * * * *", T, "repeat")
    v.repeat_pattern("repeat", vals["pattern"])
    _assert_fails(v, v.repeat_pattern, {"kind": "every"}, T, "repeat")

    v.missed_fires_like("missed_fires", vals["policy"])
    v.missed_fires_like("missed_fires", {"kind": "skip"})
    v.missed_fires_like("missed_fires", {"kind": "fire-all", "max_catchup": 3})
    _assert_fails(v, v.missed_fires_like, "skip", T, "missed_fires")
    _assert_fails(v, v.missed_fires_like, {"kind": "never"}, A, "missed_fires")
    _assert_fails(v, v.missed_fires_like, {"kind": "fire-all"}, T, "missed_fires")
    _assert_fails(
        v,
        v.missed_fires_like,
        {"kind": "fire-all", "max_catchup": 0},
        A,
        "missed_fires",
    )


def test_optional_wrapper(v: ModuleType) -> None:
    check = v.optional(v.positive_int)
    check("n", None)
    check("n", 3)
    _assert_fails(v, check, 0, A, "n")


def test_cross_parameter_errors(v: ModuleType) -> None:
    err = v.mutually_exclusive_error("delay_ms", "delay")
    assert isinstance(err, ValueError) and "delay_ms and delay" in str(err)
    err = v.requires_error("missed_fires", "repeat")
    assert isinstance(err, ValueError)
    assert str(err).startswith("missed_fires needs repeat")


def test_bulk_jobs(v: ModuleType, t: ModuleType) -> None:
    ok = [
        {"name": "a", "data": 1},
        {
            "name": "",
            "data": None,
            "delay_ms": 5,
            "attempts": 3,
            "backoff": t.BackoffSpec(kind="fixed", delay_ms=1),
            "job_id": "j1",
            "repeat": None,
        },
        {"name": "b", "data": {}, "delay": timedelta(seconds=1)},
    ]
    v.bulk_jobs("jobs", ok)
    v.bulk_jobs("jobs", ())

    def fails(entries: Any, kind: str, where: str) -> None:
        message = _assert_fails(v, v.bulk_jobs, entries, kind, "jobs")
        assert message.startswith(where), message

    fails("abc", T, "jobs")
    fails({"name": "a", "data": 1}, T, "jobs")
    fails([{"name": "a", "data": 1}, "x"], T, "jobs[1]")
    fails([{"data": 1}], T, "jobs[0]")
    fails([{"name": "a"}], T, "jobs[0]")
    fails([*ok, {"name": "a", "data": 1, "priority": 1}], T, "jobs[3].priority")
    fails([*ok, {"name": 5, "data": 1}], T, "jobs[3].name")
    fails([{"name": "a", "data": 1, "job_id": "  "}], A, "jobs[0].job_id")
    fails([{"name": "a", "data": 1, "attempts": 0}], A, "jobs[0].attempts")
    fails([{"name": "a", "data": 1, "delay_ms": -1}], A, "jobs[0].delay_ms")
    fails([{"name": "a", "data": 1, "backoff": "x"}], T, "jobs[0].backoff")
    fails([{"name": "a", "data": 1, "repeat": 5}], T, "jobs[0].repeat")
    fails(
        [{"name": "a", "data": 1, "delay_ms": 1, "delay": timedelta(1)}],
        A,
        "jobs[0].delay_ms",
    )


def test_bulk_job_keys_follow_queue_add(v: ModuleType) -> None:
    """An add_bulk entry takes the parameters of Queue.add (but missed_fires) with the
    same rules; the hand-written table must follow the spec."""
    spec = yaml.safe_load((REPO / "spec" / "api.yaml").read_text(encoding="utf-8"))
    queue = next(c for c in spec["classes"] if c["name"] == "Queue")
    add = next(m for m in queue["methods"] if m["name"] == "add")
    params = {p["name"]: p.get("validate") for p in add["params"]}
    del params["missed_fires"]
    assert list(v.BULK_JOB_RULES) == list(params)
    for key, rule in params.items():
        entry = {"name": "n", "data": 1, key: object()}
        if rule is None:
            continue
        with pytest.raises(TypeError):
            v.bulk_jobs("jobs", [entry])


def test_every_schema_rule_exists(v: ModuleType) -> None:
    schema = json.loads((REPO / "spec" / "schema" / "api.schema.json").read_text())
    from codegen.spec import rule_function

    for rule in schema["$defs"]["rule"]["enum"]:
        assert callable(getattr(v, rule_function(rule), None)), rule


@pytest.mark.parametrize(
    "url",
    [
        "redis://user:s3cr3t-pw@host:70000/0",
        "redis://:s3cr3t-pw@host:port",
        "rediss://u:s3cr3t-pw@/0",
        "http://u:s3cr3t-pw@host",
        "redis://u:s3cr3t-pw/x@host:6379/0",
        "redis://u:s3cr3t-pw@host:6379/db?password=s3cr3t-pw",
        "redis://u:ab@cd@s3cr3t-pw@host:1/x",
    ],
)
def test_redis_url_never_echoes_the_password(v: ModuleType, url: str) -> None:
    with pytest.raises(ValueError) as info:
        v.redis_url("redis_url", url)
    message = str(info.value)
    assert "s3cr3t-pw" not in message
    assert message.startswith("redis_url")
