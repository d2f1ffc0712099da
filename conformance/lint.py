"""Lint of the conformance vectors (run by `nox -s conformance` before the runner).

Checks that:
- every vector validates against schema/vector.schema.json, its id is its
  path under vectors/ and ids are unique;
- every call, `$new` factory, argument name and scrub preset exists (calls
  and parameters come from spec/api.yaml through api_table.py);
- cross vectors have a produce and a consume phase;
- every public operation of spec/api.yaml (Queue, Worker and QueueEvents
  methods and constructors, the value-type factories) has a vector;
- every DLQ reason and event kind of the wire format appears in an
  expectation;
- the queue-name vectors list exactly spec/vectors/queue_names.json;
- the vectors of the wire reference's observed bytes (the send-email
  envelope, the exponential override, the StoredSpec payload) hold them;
- known_gaps.json names existing vectors and runner keys.

Prints the vector count per area; exits 1 listing every problem.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import api_table  # noqa: E402
import runner  # noqa: E402

DLQ_REASONS = {
    "retries_exhausted",
    "unrecoverable",
    "decode_failed",
    "malformed",
    "oversize_payload",
    "stalled",
}
EVENT_KINDS = {
    "waiting",
    "active",
    "completed",
    "failed",
    "retry-scheduled",
    "dlq",
    "drained",
    "delayed",
}
GAP_KEYS = {"python", "node", "parity", "python->node", "node->python"}

# The observed bytes quoted by the wire reference, restated from its text
# (not from a run): the vectors that carry them must keep them verbatim.
_ULID = "01HF7YAT00000G000000000000"  # clock 1700000000000, seed 1, n 0
_MS = (1700000000000).to_bytes(8, "big").hex()
_EXP_OVERRIDE = (
    "92 05 95 ab" + b"exponential".hex() + "cc fa cd 27 10 cb 4008000000000000 32"
)
REFERENCE_BYTES = {
    # add("send-email", {"to": "a@x", "n": 1})
    "immediate/named": (
        ["{chasqui:emails}:stream", "entries", 0, "fields", "d", "hex"],
        "94 ba"
        + _ULID.encode().hex()
        + "c4 0b 82 a2 74 6f a3 61 40 78 a1 6e 01 cf"
        + _MS
        + "00",
    ),
    # the same with attempts=5, backoff=exponential(250, x3, max 10000, jitter 50)
    "retry_override/exponential": (
        ["{chasqui:emails}:stream", "entries", 0, "fields", "d", "hex"],
        "95 ba"
        + _ULID.encode().hex()
        + "c4 0b 82 a2 74 6f a3 61 40 78 a1 6e 01 cf"
        + _MS
        + "00"
        + _EXP_OVERRIDE,
    ),
    # StoredSpec of "tick" every 60000 ms with {"c": 1}: payload c4 06 c4 04 81 a1 63 01
    "repeatable/stored_spec": (
        ["{chasqui:ticks}:repeat:spec:tick::every:60000", "fields", "spec", "hex"],
        "98 b1"
        + b"tick::every:60000".hex()
        + "a4"
        + b"tick".hex()
        + "81 a5"
        + b"Every".hex()
        + "91 cd ea 60"
        + "c4 06 c4 04 81 a1 63 01"
        + "c0 c0 c0"
        + "00",
    ),
}


def factories_in(value: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every {$new: name, args} inside an argument value."""
    out = []
    if isinstance(value, dict):
        if "$new" in value:
            out.append((value["$new"], value.get("args", {})))
        for v in value.values():
            out += factories_in(v)
    elif isinstance(value, list):
        for v in value:
            out += factories_in(v)
    return out


def strings_in(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*(strings_in(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(strings_in(v) for v in value)) if value else set()
    return set()


def lint() -> list[str]:
    problems: list[str] = []
    schema = json.loads((HERE / "schema" / "vector.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    table = api_table.build()
    calls = table["calls"]
    presets = runner.load_presets()
    covered: set[str] = set()
    by_id_all = {v.get("id"): v for _, v in runner.load_vectors()}
    seen: dict[str, Path] = {}
    expectations: set[str] = set()

    def check_args(where: str, call: dict[str, Any], args: dict[str, Any]) -> None:
        names = {p["name"] for p in call["params"]}
        for k in args:
            if k not in names:
                problems.append(f"{where}: {call['op']} has no parameter {k!r}")

    for path, v in runner.load_vectors():
        rel = path.relative_to(runner.VECTORS).with_suffix("").as_posix()
        for err in validator.iter_errors(v):
            loc = "/".join(str(p) for p in err.absolute_path)
            problems.append(f"{rel}: schema: {loc}: {err.message[:300]}")
        vid = v.get("id")
        if vid != rel:
            problems.append(f"{rel}: id {vid!r} is not its path {rel!r}")
        if vid in seen:
            problems.append(f"{rel}: duplicate id {vid!r} (also {seen[vid]})")
        seen[vid] = path
        phases = set()
        for i, op in enumerate(v.get("operations", [])):
            where = f"{rel}: operations[{i}]"
            name = op.get("call", "")
            phases.add(op.get("phase", "produce"))
            args = op.get("args", {})
            if name in api_table.SETUP:
                pass
            elif name in api_table.COMPOSITE:
                covered.update(api_table.COMPOSITE[name])
                ctor = calls["worker.new" if name == "worker.run" else "events.new"]
                check_args(where, ctor, args)
            elif name in calls:
                covered.add(calls[name]["op"])
                check_args(where, calls[name], args)
            else:
                problems.append(f"{where}: unknown call {name!r}")
            for fname, fargs in factories_in(args) + factories_in(
                op.get("handler", {})
            ):
                if calls.get(fname, {}).get("kind") != "factory":
                    problems.append(
                        f"{where}: $new {fname!r} is not a value-type factory"
                    )
                else:
                    covered.add(calls[fname]["op"])
                    check_args(where, calls[fname], fargs)
            expectations |= strings_in(op.get("expect", {}))
            code = op.get("expect", {}).get("error")
            if code is not None and code not in table["errors"]:
                problems.append(f"{where}: {code!r} is not an error code of the spec")
        expectations |= strings_in(v.get("expect_redis", {}))
        for rule in v.get("scrub", []):
            if isinstance(rule, str) and rule not in presets:
                problems.append(f"{rel}: unknown scrub preset {rule!r}")
        if v.get("cross") and not {"produce", "consume"} <= phases:
            problems.append(f"{rel}: a cross vector needs produce and consume phases")

    for op in api_table.public_operations(table):
        if op not in covered:
            problems.append(f"no vector calls {op}")
    for reason in sorted(DLQ_REASONS - expectations):
        problems.append(f"no vector expects the DLQ reason {reason!r}")
    for kind in sorted(EVENT_KINDS - expectations):
        problems.append(f"no vector expects the event {kind!r}")

    for vid, (path, spaced) in REFERENCE_BYTES.items():
        node: Any = by_id_all.get(vid, {}).get("expect_redis", {})
        for seg in path:
            try:
                node = node[seg]
            except (KeyError, IndexError, TypeError):
                node = None
                break
        if node != spaced.replace(" ", ""):
            problems.append(
                f"{vid}: expect_redis {'/'.join(map(str, path))} is not the wire reference's bytes"
            )

    names = json.loads(
        (runner.ROOT / "spec" / "vectors" / "queue_names.json").read_text()
    )
    by_id = {v["id"]: v for _, v in runner.load_vectors()}
    for vid, group, calls_in in (
        (
            "validation/queue_name_invalid",
            "invalid",
            ("queue.new", "worker.new", "events.new"),
        ),
        ("validation/queue_name_valid", "valid", ("queue.new",)),
    ):
        want = [c["name"] * c.get("repeat", 1) for c in names[group]]
        ops = by_id.get(vid, {}).get("operations", [])
        for call in calls_in:
            got = [next(iter(o["args"].values())) for o in ops if o["call"] == call]
            if got != want:
                problems.append(
                    f"{vid}: the {call} names differ from spec/vectors/queue_names.json ({group})"
                )

    gaps = json.loads((HERE / "known_gaps.json").read_text())["gaps"]
    for key, entries in gaps.items():
        if key not in GAP_KEYS:
            problems.append(
                f"known_gaps.json: unknown key {key!r} (one of {sorted(GAP_KEYS)})"
            )
        for vid, reason in entries.items():
            if vid not in seen:
                problems.append(f"known_gaps.json: {key}: no vector {vid!r}")
            if not str(reason).strip():
                problems.append(f"known_gaps.json: {key}: {vid}: give a reason")

    areas = Counter(vid.split("/")[0] for vid in seen)
    cross = sum(1 for v in by_id.values() if v.get("cross"))
    print(f"{len(seen)} vectors ({cross} cross-paired):")
    for area, n in sorted(areas.items()):
        print(f"  {area:16} {n}")
    return problems


def main() -> int:
    problems = lint()
    for p in problems:
        print(f"conformance lint: {p}", file=sys.stderr)
    if problems:
        print(f"conformance lint: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print("conformance lint: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
