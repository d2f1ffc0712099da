"""docs/wire-format.md against the conformance vectors (run by lint.py).

The vectors are the source of truth; the page explains them. This check
fails when the two disagree in either direction:

- `<!-- wire:keys -->` tables: every key a vector leaves in Redis matches a
  row (key pattern, type, TTL or none); every row's `seen in` vector holds
  such a key, and a row seen in no vector (`—`) is held by none;
- `<!-- wire:reserved -->`: no vector holds a reserved name;
- `<!-- wire:fields <key> -->`: the entries (streams) or fields (hashes) of
  the matching keys use only the listed fields, streams in the listed order,
  `always` fields in every entry; every listed field appears somewhere;
- `<!-- wire:events -->`: each event's fields after `e`, `id`, `ts` and an
  optional `n` are exactly its row's, and every row's kind appears;
- `<!-- wire:dlq-reasons -->`: the reasons of DLQ entries and `dlq` events
  are exactly the listed ones;
- every ```hex block (`@ <vector> <key> <dotted path>`, then lines of hex
  bytes, each followed by two spaces and a comment) equals the bytes at that
  place of the vector's `expect_redis`.

`python conformance/wire_doc.py` prints the problems (exit 1) or "ok".
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "wire-format.md"
VECTORS = ROOT / "conformance" / "vectors"

KEY_RE = re.compile(r"^\{chasqui:[^}]*\}:(.*)$", re.S)
MARKER_RE = re.compile(r"^<!--\s*wire:([a-z-]+)(?:\s+(.*?))?\s*-->$")
HEX_BYTE = re.compile(r"^[0-9a-f]{2}$")
NONE = {"—", "-", ""}
EVENT_BASE = ["e", "id", "ts"]


@dataclass
class Table:
    kind: str
    arg: str
    line: int
    rows: list[dict[str, str]]


@dataclass
class Example:
    vector: str
    key: str
    path: list[str]
    hex: str
    line: int


@dataclass
class Doc:
    tables: list[Table] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def of(self, kind: str) -> list[Table]:
        return [t for t in self.tables if t.kind == kind]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _code(cell: str) -> str:
    """`x` -> x (the first code span of a cell, else the cell)."""
    m = re.search(r"`([^`]*)`", cell)
    return m.group(1) if m else cell.strip()


def _codes(cell: str) -> list[str]:
    return re.findall(r"`([^`]*)`", cell)


def parse(text: str) -> Doc:
    doc = Doc()
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        m = MARKER_RE.match(line)
        if m:
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            if j + 1 >= len(lines) or not lines[j].lstrip().startswith("|"):
                doc.problems.append(f"line {i + 1}: wire:{m.group(1)} marks no table")
                i += 1
                continue
            head = [h.lower() for h in _cells(lines[j])]
            rows = []
            k = j + 2  # past the |---| line
            while k < len(lines) and lines[k].lstrip().startswith("|"):
                cells = _cells(lines[k])
                rows.append(dict(zip(head, cells, strict=False)))
                k += 1
            doc.tables.append(Table(m.group(1), m.group(2) or "", i + 1, rows))
            i = k
            continue
        if line == "```hex":
            start = i + 1
            body = []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append((i + 1, lines[i]))
                i += 1
            ex = _parse_example(start, body, doc.problems)
            if ex:
                doc.examples.append(ex)
        i += 1
    return doc


def _parse_example(
    start: int, body: list[tuple[int, str]], problems: list[str]
) -> Example | None:
    if not body or not body[0][1].startswith("@ "):
        problems.append(
            f"line {start}: a hex block starts with '@ <vector> <key> <path>'"
        )
        return None
    head = body[0][1][2:].split()
    if len(head) != 3:
        problems.append(f"line {start}: '@ <vector> <key> <path>', got {body[0][1]!r}")
        return None
    out = []
    for no, text in body[1:]:
        data = text.split("  ", 1)[0].split()
        for tok in data:
            if not HEX_BYTE.match(tok):
                problems.append(
                    f"line {no}: {tok!r} is not a hex byte (comments follow two spaces)"
                )
        out += data
    return Example(head[0], head[1], head[2].split("."), "".join(out), start)


def key_pattern(doc_key: str) -> re.Pattern[str]:
    """`dlid:<job_id>` -> ^dlid:.+$ (a placeholder is any non-empty text)."""
    parts = re.split(r"(<[^>]+>)", doc_key)
    return re.compile(
        "^" + "".join(".+" if p.startswith("<") else re.escape(p) for p in parts) + "$",
        re.S,
    )


def load_vectors() -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted(VECTORS.rglob("*.json")):
        v = json.loads(path.read_text(encoding="utf-8"))
        out[v.get("id", path.stem)] = v
    return out


def _suffix(key: str) -> str | None:
    m = KEY_RE.match(key)
    return m.group(1) if m else None


def _at(node: Any, path: list[str]) -> Any:
    for seg in path:
        if isinstance(node, list):
            if not seg.isdigit() or int(seg) >= len(node):
                return None
            node = node[int(seg)]
        elif isinstance(node, dict):
            if seg not in node:
                return None
            node = node[seg]
        else:
            return None
    return node


def _is_subsequence(got: list[str], order: list[str]) -> bool:
    it = iter(order)
    return all(any(f == o for o in it) for f in got)


def check(text: str, vectors: dict[str, dict[str, Any]]) -> list[str]:
    doc = parse(text)
    problems = list(doc.problems)

    # Keys: (doc key, pattern, type, has ttl, seen-in vector, line)
    keys = []
    for t in doc.of("keys"):
        for row in t.rows:
            k = _code(row.get("key", ""))
            if not k:
                problems.append(f"line {t.line}: a keys row without a key")
                continue
            keys.append(
                (
                    k,
                    key_pattern(k),
                    row.get("type", "").strip(),
                    row.get("ttl", "").strip() not in NONE,
                    _code(row.get("seen in", "")),
                )
            )
    reserved = [
        (_code(r.get("key", "")), key_pattern(_code(r.get("key", ""))))
        for t in doc.of("reserved")
        for r in t.rows
    ]
    if not keys:
        problems.append("no <!-- wire:keys --> table")

    def row_of(suffix: str) -> tuple[str, re.Pattern[str], str, bool, str] | None:
        return next((r for r in keys if r[1].match(suffix)), None)

    held: dict[str, set[str]] = {}  # doc key -> vectors holding one
    for vid, v in vectors.items():
        for key, val in v.get("expect_redis", {}).items():
            suffix = _suffix(key)
            if suffix is None:
                problems.append(
                    f"{vid}: key {key!r} lacks the {{chasqui:<queue>}}: prefix"
                )
                continue
            for name, pat in reserved:
                if pat.match(suffix):
                    problems.append(
                        f"{vid}: {key!r} uses the reserved name {name!r}: move it to a "
                        "keys table of docs/wire-format.md"
                    )
            row = row_of(suffix)
            if row is None:
                if not any(p.match(suffix) for _, p in reserved):
                    problems.append(
                        f"{vid}: key {key!r} is in no keys table of docs/wire-format.md"
                    )
                continue
            name, _, typ, has_ttl, _ = row
            held.setdefault(name, set()).add(vid)
            if val.get("type") != typ:
                problems.append(
                    f"{vid}: {key!r} is a {val.get('type')}, docs/wire-format.md says {typ}"
                )
            ttl = val.get("ttl_ms")
            if has_ttl and ttl == -1:
                problems.append(
                    f"{vid}: {key!r} has no TTL, docs/wire-format.md gives one"
                )
            if not has_ttl and ttl != -1:
                problems.append(
                    f"{vid}: {key!r} has a TTL, docs/wire-format.md says none"
                )
    for name, _, _, _, seen in keys:
        if seen in NONE:
            if name in held:
                problems.append(
                    f"docs/wire-format.md: {name!r} says no vector holds it, but "
                    f"{sorted(held[name])[0]} does: name it"
                )
        elif seen not in vectors:
            problems.append(
                f"docs/wire-format.md: {name!r} is seen in {seen!r}: no such vector"
            )
        elif seen not in held.get(name, set()):
            problems.append(
                f"docs/wire-format.md: {name!r}: vector {seen} holds no such key"
            )

    # Which values of which keys: (vector, key suffix, value)
    values = [
        (vid, _suffix(k) or "", val)
        for vid, v in vectors.items()
        for k, val in v.get("expect_redis", {}).items()
    ]

    for t in doc.of("fields"):
        order = [_code(r.get("field", "")) for r in t.rows]
        always = {
            _code(r.get("field", ""))
            for r in t.rows
            if r.get("present", "").startswith("always")
        }
        pat = key_pattern(t.arg)
        seen_fields: set[str] = set()
        matched = False
        for vid, suffix, val in values:
            if not pat.match(suffix):
                continue
            matched = True
            records = (
                [e.get("fields", {}) for e in val.get("entries", [])]
                if val.get("type") == "stream"
                else [val.get("fields", {})]
            )
            for fields in records:
                got = list(fields)
                seen_fields |= set(got)
                extra = [f for f in got if f not in order]
                if extra:
                    problems.append(
                        f"{vid}: {t.arg} has fields {extra} that docs/wire-format.md does not list"
                    )
                elif val.get("type") == "stream" and not _is_subsequence(got, order):
                    problems.append(
                        f"{vid}: {t.arg} fields {got} are not in the order {order}"
                    )
                for f in sorted(always - set(got)):
                    problems.append(
                        f"{vid}: a {t.arg} entry lacks the always-present {f!r}"
                    )
        if not matched:
            problems.append(
                f"line {t.line}: wire:fields {t.arg!r} matches no vector key"
            )
        for f in order:
            if f not in seen_fields:
                problems.append(
                    f"docs/wire-format.md: {t.arg} field {f!r} is in no vector"
                )

    event_rows: dict[str, list[str]] = {}
    for t in doc.of("events"):
        for r in t.rows:
            # The third column: the fields after e, id, ts and n.
            extra = list(r.values())[2] if len(r) > 2 else ""
            event_rows[_code(r.get("e", ""))] = _codes(extra)
    if not event_rows:
        problems.append("no <!-- wire:events --> table")
    reasons = {
        _code(r.get("reason", "")) for t in doc.of("dlq-reasons") for r in t.rows
    }
    if not reasons:
        problems.append("no <!-- wire:dlq-reasons --> table")
    kinds_seen: set[str] = set()
    reasons_seen: set[str] = set()
    for vid, suffix, val in values:
        if suffix == "events":
            for e in val.get("entries", []):
                f = e.get("fields", {})
                kind = f.get("e")
                kinds_seen.add(kind)
                if kind not in event_rows:
                    problems.append(
                        f"{vid}: event {kind!r} is not in docs/wire-format.md"
                    )
                    continue
                names = list(f)
                base = EVENT_BASE + (["n"] if "n" in names else [])
                want = base + event_rows[kind]
                if names != want:
                    problems.append(
                        f"{vid}: event {kind!r} has fields {names}, docs/wire-format.md says {want}"
                    )
                if kind == "dlq":
                    reasons_seen.add(f.get("reason"))
        if suffix == "dlq":
            for e in val.get("entries", []):
                reasons_seen.add(e.get("fields", {}).get("reason"))
    for kind in sorted(set(event_rows) - kinds_seen):
        problems.append(f"docs/wire-format.md: no vector shows the event {kind!r}")
    for reason in sorted(reasons_seen - reasons, key=str):
        problems.append(
            f"a vector has the DLQ reason {reason!r}, not in docs/wire-format.md"
        )
    for reason in sorted(reasons - reasons_seen):
        problems.append(
            f"docs/wire-format.md: no vector shows the DLQ reason {reason!r}"
        )

    for ex in doc.examples:
        where = f"docs/wire-format.md line {ex.line}"
        v = vectors.get(ex.vector)
        if v is None:
            problems.append(f"{where}: no vector {ex.vector!r}")
            continue
        node = _at(v.get("expect_redis", {}).get(ex.key), ex.path)
        if isinstance(node, dict) and "hex" in node:
            want = node["hex"]
        elif isinstance(node, str):
            want = node.encode("utf-8").hex()
        else:
            problems.append(
                f"{where}: {ex.vector} has no bytes at {ex.key} {'.'.join(ex.path)}"
            )
            continue
        if ex.hex != want:
            problems.append(
                f"{where}: the bytes differ from {ex.vector} at {ex.key} {'.'.join(ex.path)}:\n"
                f"  doc:    {ex.hex}\n  vector: {want}"
            )
    if not doc.examples:
        problems.append("docs/wire-format.md has no ```hex examples")
    return problems


def event_kinds(text: str) -> set[str]:
    return {_code(r.get("e", "")) for t in parse(text).of("events") for r in t.rows}


def dlq_reasons(text: str) -> set[str]:
    return {
        _code(r.get("reason", ""))
        for t in parse(text).of("dlq-reasons")
        for r in t.rows
    }


def main() -> int:
    problems = check(DOC.read_text(encoding="utf-8"), load_vectors())
    for p in problems:
        print(f"wire doc: {p}", file=sys.stderr)
    if problems:
        return 1
    print("wire doc: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
