"""Lint of the conformance vectors (run by `nox -s conformance` before the runner).

Checks that:
- every vector validates against schema/vector.schema.json, its id is its
  path under vectors/ and ids are unique;
- every call, `$new` factory, argument name and scrub preset exists (calls
  and parameters come from spec/api.yaml through api_table.py);
- cross vectors have a produce and a consume phase;
- every public operation of spec/api.yaml (Queue, Worker and QueueEvents
  methods and constructors, the value-type factories) has a vector;
- docs/wire-format.md and the vectors agree (wire_doc.py): every key,
  stream/hash field, event kind (with its fields) and DLQ reason a vector
  shows is documented and every documented one is shown, and the page's
  byte examples are the vectors' bytes;
- the queue-name vectors list exactly spec/vectors/queue_names.json;
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
import wire_doc  # noqa: E402

GAP_KEYS = {"python", "node", "parity", "python->node", "node->python"}


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


def lint() -> list[str]:
    problems: list[str] = []
    schema = json.loads((HERE / "schema" / "vector.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    table = api_table.build()
    calls = table["calls"]
    presets = runner.load_presets()
    covered: set[str] = set()
    seen: dict[str, Path] = {}

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
            code = op.get("expect", {}).get("error")
            if code is not None and code not in table["errors"]:
                problems.append(f"{where}: {code!r} is not an error code of the spec")
        for rule in v.get("scrub", []):
            if isinstance(rule, str) and rule not in presets:
                problems.append(f"{rel}: unknown scrub preset {rule!r}")
        if v.get("cross") and not {"produce", "consume"} <= phases:
            problems.append(f"{rel}: a cross vector needs produce and consume phases")

    for op in api_table.public_operations(table):
        if op not in covered:
            problems.append(f"no vector calls {op}")
    # The DLQ reasons, event kinds, keys, fields and byte examples of
    # docs/wire-format.md against the vectors, in both directions.
    problems += wire_doc.check(
        wire_doc.DOC.read_text(encoding="utf-8"),
        {v.get("id", ""): v for _, v in runner.load_vectors()},
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
