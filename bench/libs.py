"""The libraries the harness compares, with their versions pinned.

Both `noxfile.py` (to install them) and `bench/run.py` (to run them) read
this file; it imports nothing outside the standard library.

The Python peers cannot share one virtualenv: arq 0.28 wants redis-py < 6,
saq 0.26 wants redis-py < 8 and taskiq-redis 1.2 wants redis-py >= 8. So
each Python peer gets its own virtualenv (beside the session's, under
`.nox/bench-peers/<name>`), with the redis-py its own pins allow and
hiredis (the parser redis-py picks up when present) in every one of them,
so no peer is measured with the pure-Python parser while another has the C
one. chasquimq runs in the session's own virtualenv (release build).
BullMQ and its Redis client come from `bench/node/package-lock.json`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

HIREDIS = "hiredis==3.5.0"


@dataclass(frozen=True)
class Lib:
    name: str  # the harness's key, used on the command line and in the JSON
    label: str  # what the table prints
    kind: str  # "py-self" (the session's venv), "py-peer" (own venv) or "node"
    driver: str  # path under bench/
    pins: tuple[str, ...] = field(default=())  # pip requirements (py-peer only)
    version_of: str = ""  # the distribution / npm package whose version is printed


LIBS: tuple[Lib, ...] = (
    Lib(
        "chasquimq",
        "chasquimq (Python)",
        "py-self",
        "drivers/chasquimq_py.py",
        version_of="chasquimq",
    ),
    # The Node slot: chasquimq via its Node API (bindings/node). While
    # bindings/node is absent or does not build and load (run.py:
    # node_binding_available), every scenario prints a "not available" row
    # for it; `nox -s bench` benchmarks a release build of it.
    Lib(
        "chasquimq-node",
        "chasquimq (Node)",
        "node",
        "node/chasquimq_node.mjs",
        version_of="chasquimq",
    ),
    Lib("bullmq", "BullMQ (Node)", "node", "node/bullmq.mjs", version_of="bullmq"),
    Lib(
        "arq",
        "arq",
        "py-peer",
        "drivers/arq_.py",
        pins=("arq==0.28.0", "redis==5.3.1", HIREDIS),
        version_of="arq",
    ),
    Lib(
        "saq",
        "saq",
        "py-peer",
        "drivers/saq_.py",
        # saq 0.26.4 imports typing_extensions without declaring it.
        pins=(
            "saq[redis]==0.26.4",
            "redis==7.4.1",
            "typing_extensions==4.16.0",
            HIREDIS,
        ),
        version_of="saq",
    ),
    Lib(
        "taskiq",
        "taskiq + taskiq-redis (streams)",
        "py-peer",
        "drivers/taskiq_.py",
        pins=("taskiq==0.13.0", "taskiq-redis==1.2.4", "redis==8.1.0", HIREDIS),
        version_of="taskiq-redis",
    ),
    Lib(
        "rq",
        "rq (SimpleWorker)",
        "py-peer",
        "drivers/rq_.py",
        pins=("rq==2.12.0", "redis==8.1.0", HIREDIS),
        version_of="rq",
    ),
)

BY_NAME = {lib.name: lib for lib in LIBS}
