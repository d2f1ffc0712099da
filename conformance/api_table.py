"""The call table the drivers execute vectors with, built from spec/api.yaml.

A vector names public calls language-neutrally (`queue.add`, `worker.new`,
`BackoffSpec.exponential`) with the spec's Python parameter names. This
module turns the spec into one JSON table that both drivers read: for each
call, the class, the Python and Node method names and every parameter's
Python name, Node name and kind (positional or keyword). Drivers never
hard-code a signature, so a spec change reaches both at once.

`python conformance/api_table.py` prints the table.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from codegen import spec as specmod  # noqa: E402

# Vector call prefix -> spec class (or dataclass, for Job methods).
PREFIXES = {"queue": "Queue", "worker": "Worker", "events": "QueueEvents", "job": "Job"}

# Calls the drivers implement themselves, on top of the public API: each
# runs (and so covers) the listed public operations.
COMPOSITE = {
    "worker.run": ["Worker.__init__", "Worker.run", "Worker.close"],
    "events.collect": [
        "QueueEvents.__init__",
        "QueueEvents.__aiter__",
        "QueueEvents.close",
    ],
}
# Set-up calls outside the public API (raw Redis commands, a pause).
SETUP = {"redis", "sleep"}


def _params(params: list[specmod.Param]) -> list[dict[str, str]]:
    return [{"name": p.name, "node_name": p.node_name, "kind": p.kind} for p in params]


def build(path: Path = ROOT / "spec" / "api.yaml") -> dict[str, Any]:
    spec = specmod.load(path)
    calls: dict[str, Any] = {}
    classes = {c.name: c for c in spec.classes}
    dataclasses = {d.name: d for d in spec.dataclasses}
    for prefix, cls_name in PREFIXES.items():
        cls = classes.get(cls_name)
        if cls is not None:
            calls[f"{prefix}.new"] = {
                "kind": "ctor",
                "class": cls_name,
                "op": f"{cls_name}.__init__",
                "params": _params(cls.init.params),
            }
            methods = cls.methods
        else:
            methods = dataclasses[cls_name].methods
        for m in methods:
            calls[f"{prefix}.{m.name}"] = {
                "kind": "method",
                "class": cls_name,
                "op": f"{cls_name}.{m.name}",
                "name": m.name,
                "node_name": m.node_name,
                "params": _params(m.params),
            }
    for d in spec.dataclasses:
        for f in d.factories:
            calls[f"{d.name}.{f.name}"] = {
                "kind": "factory",
                "class": d.name,
                "op": f"{d.name}.{f.name}",
                "name": f.name,
                "node_name": f.node_name,
                "params": _params(f.params),
            }
    add = next(m for m in classes["Queue"].methods if m.name == "add")
    return {
        "calls": calls,
        "composite": COMPOSITE,
        "dataclasses": {
            d.name: [
                {"name": f.name, "node_name": f.node_name}
                for f in d.fields
                if not f.name.startswith("_")
            ]
            for d in spec.dataclasses
        },
        # add_bulk entries take Queue.add's parameters as keys.
        "bulk_keys": {p.name: p.node_name for p in add.params},
        "errors": [e.code for e in spec.errors],
    }


def public_operations(table: dict[str, Any]) -> list[str]:
    """Every operation the coverage lint asks a vector for: the methods of
    Queue, Worker and QueueEvents (constructors included) and the factories
    of the value types."""
    ops = [c["op"] for c in table["calls"].values() if c["class"] != "Job"]
    return sorted(set(ops))


if __name__ == "__main__":
    json.dump(build(), sys.stdout, indent=1)
    print()
