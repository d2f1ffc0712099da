"""The conformance runner's machinery: drivers, normalization, scrubbing,
comparison. `test_conformance.py` turns it into pytest cases.

A vector runs phase by phase (`produce`, then `consume`, then `verify`);
each phase is one request to a driver (`drivers/`), so a cross pair is the
same vector with its phases given to different languages. The replies are
merged into one document,

    {"results": [<one {"result": ...} or {"error": code} per operation>],
     "redis":   {<key>: <type, ttl_ms and contents, decoded>}}

which the vector's `scrub` rules then make run-independent, and which must
equal the vector's expectation (`operations[i].expect`, `expect_redis`).

    python conformance/runner.py show VECTOR.json [--lang node] [--cross python,node]

prints that document for one vector (for writing and reviewing vectors).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import fnmatch
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VECTORS = HERE / "vectors"
PHASES = ("produce", "consume", "verify")
LANGS = ("python", "node")
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(HERE))


def load_vectors() -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for path in sorted(VECTORS.glob("*/*.json")):
        with open(path, encoding="utf-8") as f:
            out.append((path, json.load(f)))
    return out


def load_presets() -> dict[str, list[dict[str, Any]]]:
    with open(HERE / "scrub_presets.json", encoding="utf-8") as f:
        presets: dict[str, Any] = json.load(f)
    return presets["presets"]


# --------------------------------------------------------------------------
# Drivers
# --------------------------------------------------------------------------


class Driver:
    """One long-lived driver process speaking the line protocol."""

    def __init__(self, lang: str, api_path: str) -> None:
        self.lang = lang
        if lang == "python":
            cmd = [sys.executable, str(HERE / "drivers" / "python_driver.py")]
        else:
            cmd = ["node", str(HERE / "drivers" / "node_driver.mjs")]
        self.proc = subprocess.Popen(
            [*cmd, "--api", api_path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.hello = self._read(120)

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _read(self, timeout: float) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(
                f"{self.lang} driver: no reply within {timeout} s"
            ) from None
        if line is None:
            raise RuntimeError(f"{self.lang} driver exited ({self.proc.wait()})")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def request(self, req: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        reply = self._read(timeout)
        if "crash" in reply:
            raise RuntimeError(f"{self.lang} driver crashed:\n{reply['crash']}")
        return reply

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def write_api_table(path: Path) -> None:
    import api_table

    path.write_text(json.dumps(api_table.build()))


def phases_of(vector: dict[str, Any]) -> list[str]:
    used = {op.get("phase", "produce") for op in vector["operations"]}
    return [p for p in PHASES if p in used]


def run_vector(
    vector: dict[str, Any],
    drivers: dict[str, Driver],
    url: str,
    langs: dict[str, str],
) -> dict[str, Any]:
    """Runs every phase of `vector` (phase -> language in `langs`); returns
    the raw merged document (results by operation index, t0, t1, redis)."""
    results: dict[int, Any] = {}
    t0 = t1 = 0
    dump: dict[str, Any] = {}
    for i, phase in enumerate(phases_of(vector)):
        reply = drivers[langs[phase]].request(
            {
                "vector": vector,
                "phase": phase,
                "phase_index": i,
                "redis_url": url,
                "flush": i == 0,
            }
        )
        results.update({int(k): v for k, v in reply["results"].items()})
        if i == 0:
            t0 = reply["t0"]
        t1, dump = reply["t1"], reply["redis"]
    return {
        "results": [results.get(i) for i in range(len(vector["operations"]))],
        "t0": t0,
        "t1": t1,
        "redis": dump,
    }


# --------------------------------------------------------------------------
# Normalization: raw driver output -> decoded canonical document
# --------------------------------------------------------------------------


def canon(v: Any) -> Any:
    """Decoded msgpack as the drivers' canonical JSON."""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, (bytes, bytearray)):
        return {"$bytes": bytes(v).hex()}
    if isinstance(v, (list, tuple)):
        return [canon(x) for x in v]
    if isinstance(v, dict):
        return {str(k): canon(x) for k, x in v.items()}
    return v


def unpack(b: bytes) -> Any:
    return msgpack.unpackb(b, raw=False, strict_map_key=False)


def text(b: bytes) -> Any:
    """UTF-8 text without control characters as a string, else hex."""
    try:
        s = b.decode("utf-8")
    except UnicodeDecodeError:
        return {"hex": b.hex()}
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in s):
        return {"hex": b.hex()}
    return s


def retry_view(r: Any) -> Any:
    if r is None:
        return None
    if not (isinstance(r, list) and len(r) in (2, 3)):
        return {"unexpected": canon(r)}
    backoff = r[1]
    if isinstance(backoff, list) and len(backoff) == 5:
        names = ("kind", "delay_ms", "max_delay_ms", "multiplier", "jitter_ms")
        backoff = dict(zip(names, canon(backoff), strict=True))
    view = {"max_attempts": r[0], "backoff": canon(backoff)}
    if len(r) == 3:  # the time limit's slot, written only when set
        view["timeout_ms"] = r[2]
    return view


def payload_view(payload: Any) -> Any:
    if not isinstance(payload, bytes):
        return {"unexpected": canon(payload)}
    try:
        return {"data": canon(unpack(payload))}
    except Exception:
        return {"undecodable": payload.hex()}


def envelope_view(b: bytes) -> Any:
    try:
        env = unpack(b)
    except Exception:
        return None
    if not (isinstance(env, list) and 3 <= len(env) <= 5):
        return None
    out: dict[str, Any] = {
        "id": env[0],
        "payload": payload_view(env[1]),
        "created_at_ms": env[2],
        "attempt": env[3] if len(env) > 3 else None,
    }
    if len(env) == 5:
        out["retry"] = retry_view(env[4])
    return out


def member_view(b: bytes) -> Any:
    if len(b) < 4:
        return None
    n = int.from_bytes(b[:4], "little")
    if 4 + n > len(b):
        return None
    return {"name": text(b[4 : 4 + n]), "envelope": envelope_view(b[4 + n :])}


def stored_spec_view(b: bytes) -> Any:
    try:
        s = unpack(b)
    except Exception:
        return None
    if not (isinstance(s, list) and len(s) in (8, 9)):
        return {"unexpected": canon(s)}
    out = {
        "key": s[0],
        "job_name": s[1],
        "pattern": canon(s[2]),
        # Double-wrapped: bin(msgpack(bin(user msgpack))).
        "payload": payload_view(unpack(s[3]))
        if isinstance(s[3], bytes)
        else canon(s[3]),
        "limit": s[4],
        "start_after_ms": s[5],
        "end_before_ms": s[6],
        "fired": s[7],
    }
    if len(s) == 9:
        out["missed_fires"] = canon(s[8])
    return out


def view(b: bytes, kind: str) -> Any:
    """Raw bytes plus their decoded form (`kind` names the layout)."""
    if kind == "text" or not b:
        return text(b)
    decoders: dict[str, Callable[[bytes], Any]] = {
        "envelope": envelope_view,
        "member": member_view,
        "stored_spec": stored_spec_view,
        "retry": lambda x: retry_view(unpack(x)),
        "msgpack": lambda x: canon(unpack(x)),
    }
    try:
        decoded = decoders[kind](b)
    except Exception:
        decoded = None
    out: dict[str, Any] = {"hex": b.hex()}
    if decoded is not None:
        out[kind] = decoded
    return out


def suffix_of(key: str) -> str:
    """`{chasqui:Q}:stream` -> `stream` (the queue name ends at the first `}`)."""
    i = key.find("}:")
    return key[i + 2 :] if key.startswith("{chasqui:") and i > 0 else key


def normalize_redis(raw: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in sorted(raw, key=lambda k: k.encode()):
        e = raw[key]
        suffix = suffix_of(key)
        c: dict[str, Any] = {"type": e["type"], "ttl_ms": e["pttl"]}
        if e["type"] == "string":
            kind = (
                "member"
                if suffix.startswith("didx:")
                else "msgpack"
                if suffix.startswith("result:")
                else "text"
            )
            c["value"] = view(bytes.fromhex(e["value"]), kind)
        elif e["type"] == "stream":
            entries = []
            for entry in e["entries"]:
                fields: dict[str, Any] = {}
                for fk, fv in entry["fields"]:
                    name = bytes.fromhex(fk).decode("utf-8", "replace")
                    kind = "envelope" if name == "d" and suffix != "events" else "text"
                    fields[name] = view(bytes.fromhex(fv), kind)
                entries.append({"id": entry["id"], "fields": fields})
            c["entries"] = entries
            c["groups"] = e["groups"]
        elif e["type"] == "zset":
            c["members"] = [
                {
                    "member": view(
                        bytes.fromhex(m), "member" if suffix == "delayed" else "text"
                    ),
                    "score": canon(float(s)),
                }
                for m, s in e["members"]
            ]
        elif e["type"] == "hash":
            fields = {}
            # Field order of a Redis hash is not data (a hashtable-encoded
            # hash iterates in an order seeded per server start): sorted.
            for fk, fv in sorted(e["fields"]):
                name = bytes.fromhex(fk).decode("utf-8", "replace")
                kind = {"spec": "stored_spec", "opts": "retry"}.get(name, "text")
                fields[name] = view(bytes.fromhex(fv), kind)
            c["fields"] = fields
        out[key] = c
    return out


def sort_keys(v: Any) -> Any:
    """Results compare without regard to dict order (the languages build
    their records differently); Redis contents keep theirs."""
    if isinstance(v, dict):
        return {k: sort_keys(v[k]) for k in sorted(v)}
    if isinstance(v, list):
        return [sort_keys(x) for x in v]
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def normalize(raw: dict[str, Any]) -> dict[str, Any]:
    return {
        "results": [sort_keys(r) for r in raw["results"]],
        "redis": normalize_redis(raw["redis"]),
    }


# --------------------------------------------------------------------------
# Scrubbing
# --------------------------------------------------------------------------


def expand_scrub(rules: list[Any], presets: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for r in rules:
        if isinstance(r, str):
            if r not in presets:
                raise KeyError(f"unknown scrub preset {r}")
            out.extend(presets[r])
        else:
            out.append(r)
    return out


def _slots(node: Any, path: list[Any]) -> Iterator[tuple[Any, Any]]:
    """(container, key) of every place `path` matches; dict keys match as
    fnmatch patterns, list positions as "*" or an index."""
    if not path:
        return
    seg, rest = path[0], path[1:]
    if isinstance(node, dict):
        keys = [k for k in node if fnmatch.fnmatchcase(k, str(seg))]
    elif isinstance(node, list):
        keys = (
            list(range(len(node)))
            if seg == "*"
            else [seg]
            if isinstance(seg, int) and seg < len(node)
            else []
        )
    else:
        return
    for k in keys:
        if rest:
            yield from _slots(node[k], rest)
        else:
            yield node, k


def _number(v: Any) -> int | float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, str) and re.fullmatch(r"-?\d+", v):
        return int(v)
    return None


def _at(node: Any, path: list[str]) -> Any:
    for seg in path:
        if not isinstance(node, dict) or seg not in node:
            return None
        node = node[seg]
    return node


def scrub(
    doc: dict[str, Any], rules: list[dict[str, Any]], t0: int, t1: int
) -> dict[str, Any]:
    """Applies the rules in order; returns `doc` (changed in place).

    - `as: label`: the value becomes `<label:N>`, N numbering distinct values
      in order of appearance (equal values keep equal tokens).
    - `within_ms: [lo, hi]`: an epoch-ms value taken from the server clock
      must lie in [t0 + lo, t1 + hi]; it becomes `<ms lo..hi>`.
    - `range: [lo, hi]`: a number must lie in [lo, hi]; it becomes `<lo..hi>`.
    - `match: regex`: a string must match; it becomes `<~regex>`, or
      `<label>` with `label`.
    - `drop: true`: the value is removed.
    - `collapse: {at: path, equals: v}` on a list: its elements whose `at`
      equals `v` are removed and the first of them appended once at the
      end (events whose count and position depend on timing: `drained`).
    A value that breaks its bound becomes `<OUT OF BOUNDS ...>`, so the
    comparison fails and shows it.
    """
    tables: dict[str, dict[str, int]] = {}
    for rule in rules:
        slots = list(_slots(doc, rule["path"]))
        if "drop" in rule:
            for container, k in reversed(slots):
                del container[k]
            continue
        for container, k in slots:
            v = container[k]
            if "as" in rule:
                table = tables.setdefault(rule["as"], {})
                n = table.setdefault(json.dumps(v, sort_keys=True), len(table))
                container[k] = f"<{rule['as']}:{n}>"
            elif "within_ms" in rule:
                lo, hi = rule["within_ms"]
                x = _number(v)
                ok = x is not None and t0 + lo <= x <= t1 + hi
                rel = "?" if x is None else f"t0{x - t0:+}"
                container[k] = (
                    f"<ms {lo}..{hi}>"
                    if ok
                    else f"<OUT OF BOUNDS {v!r} ({rel}): want {lo}..{hi}, run took {t1 - t0} ms>"
                )
            elif "range" in rule:
                lo, hi = rule["range"]
                x = _number(v)
                ok = x is not None and lo <= x <= hi
                container[k] = (
                    f"<{lo}..{hi}>" if ok else f"<OUT OF BOUNDS {v!r}: want {lo}..{hi}>"
                )
            elif "match" in rule:
                ok = isinstance(v, str) and re.fullmatch(rule["match"], v) is not None
                token = (
                    f"<{rule['label']}>" if "label" in rule else f"<~{rule['match']}>"
                )
                container[k] = (
                    token if ok else f"<OUT OF BOUNDS {v!r}: want ~{rule['match']}>"
                )
            elif "collapse" in rule:
                if not isinstance(v, list):
                    continue
                at, equals = rule["collapse"]["at"], rule["collapse"]["equals"]
                hits = [e for e in v if _at(e, at) == equals]
                container[k] = [e for e in v if _at(e, at) != equals] + hits[:1]
            else:
                raise KeyError(f"scrub rule without an action: {rule}")
    return doc


def expected_doc(vector: dict[str, Any]) -> dict[str, Any]:
    return {
        "results": [
            sort_keys(op.get("expect", {"result": None})) for op in vector["operations"]
        ],
        "redis": {
            k: vector["expect_redis"][k]
            for k in sorted(vector["expect_redis"], key=lambda k: k.encode())
        },
    }


def actual_doc(vector: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    doc = normalize(raw)
    rules = expand_scrub(vector.get("scrub", []), load_presets())
    return scrub(doc, rules, raw["t0"], raw["t1"])


def dumps(doc: Any) -> str:
    return json.dumps(doc, indent=1, ensure_ascii=False)


def diff(expected: Any, actual: Any, a: str = "expected", b: str = "actual") -> str:
    """Empty when equal (dict order counts: stream fields are ordered)."""
    x, y = dumps(expected), dumps(actual)
    if x == y:
        return ""
    return "\n".join(
        difflib.unified_diff(x.splitlines(), y.splitlines(), a, b, lineterm="", n=4)
    )


# --------------------------------------------------------------------------
# Command line: print a vector's document
# --------------------------------------------------------------------------


@contextlib.contextmanager
def environment(langs: set[str]) -> Iterator[tuple[dict[str, Driver], str]]:
    from redisproc import RedisProcess

    with tempfile.TemporaryDirectory() as tmp, RedisProcess() as redis:
        api = Path(tmp) / "api.json"
        write_api_table(api)
        drivers = {lang: Driver(lang, str(api)) for lang in sorted(langs)}
        try:
            yield drivers, redis.url
        finally:
            for d in drivers.values():
                d.close()


def main() -> None:
    ap = argparse.ArgumentParser(description="Print a vector's scrubbed document.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    show = sub.add_parser("show")
    show.add_argument("vector", type=Path)
    show.add_argument("--lang", default="python", choices=LANGS)
    show.add_argument("--cross", help="producer,consumer languages, e.g. python,node")
    show.add_argument("--raw", action="store_true", help="before scrubbing")
    opts = ap.parse_args()
    vector = json.loads(opts.vector.read_text(encoding="utf-8"))
    if opts.cross:
        a, b = opts.cross.split(",")
        langs = {"produce": a, "consume": b, "verify": a}
    else:
        langs = dict.fromkeys(PHASES, opts.lang)
    with environment(set(langs.values())) as (drivers, url):
        raw = run_vector(vector, drivers, url, langs)
    doc = normalize(raw) if opts.raw else actual_doc(vector, raw)
    print(dumps(doc))
    if not opts.raw and "expect_redis" in vector:
        d = diff(expected_doc(vector), doc)
        print(d or "matches the expectation", file=sys.stderr)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
