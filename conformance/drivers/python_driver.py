"""Conformance driver for the Python package (`chasquimq`).

Executes conformance vectors through the public API and reports what
happened: one JSON request per line on stdin, one JSON reply per line on
stdout (see conformance/README.md, "Driver protocol"). Its twin is
`node_driver.mjs`; keep the two in step.

    python conformance/drivers/python_driver.py --api api.json

A request runs the operations of one phase of one vector against
`redis_url`: it sets (or clears) the engine's test clock and id seed,
optionally flushes Redis first, and replies with every operation's
result (`{"result": <canonical JSON>}` or `{"error": "<code>"}`), the
Redis server time before and after, and a raw dump of every key.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
import traceback
from datetime import timedelta
from typing import Any

import redis.asyncio as aioredis

import chasquimq
from chasquimq import ChasquiError, UnrecoverableError, _native


class Error(Exception):
    """What a failing handler raises: named like JavaScript's `Error`, so
    the DLQ `detail` (`<class>: <message>`) reads the same in both drivers."""


class DriverError(Exception):
    """The vector asks for something this driver cannot do (a vector bug)."""


def canon(v: Any, api: dict[str, Any]) -> Any:
    """A Python value as the canonical JSON both drivers produce."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return int(v) if v.is_integer() else v
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"$bytes": bytes(v).hex()}
    if isinstance(v, (list, tuple)):
        return [canon(x, api) for x in v]
    if isinstance(v, dict):
        return {str(k): canon(x, api) for k, x in v.items()}
    name = type(v).__name__
    fields = api["dataclasses"].get(name)
    if fields is not None:
        out: dict[str, Any] = {"$type": name}
        for f in fields:
            out[f["name"]] = canon(getattr(v, f["name"]), api)
        return out
    return {"$repr": type(v).__name__}


class Run:
    """One request: one phase of one vector."""

    def __init__(self, req: dict[str, Any], api: dict[str, Any]) -> None:
        self.req = req
        self.api = api
        self.vector = req["vector"]
        self.url = req["redis_url"]
        self.queue_name = self.vector["queue"]
        self.r = aioredis.from_url(self.url)
        self.queue: Any = None
        self.saved: dict[str, Any] = {}

    def key(self, suffix: str) -> str:
        return f"{{chasqui:{self.queue_name}}}:{suffix}"

    async def server_ms(self) -> int:
        s, us = await self.r.time()
        return int(s) * 1000 + int(us) // 1000

    # -- values --------------------------------------------------------------

    def resolve(self, v: Any) -> Any:
        if isinstance(v, list):
            return [self.resolve(x) for x in v]
        if not isinstance(v, dict):
            return v
        if "$new" in v:
            return self.call_factory(v["$new"], v.get("args", {}))
        if "$bytes" in v:
            return bytes.fromhex(v["$bytes"])
        if "$set" in v:  # not msgpack-encodable in either language
            return set(v["$set"])
        if "$timedelta_ms" in v:
            return timedelta(milliseconds=v["$timedelta_ms"])
        if "$ref" in v:
            obj = self.saved[v["$ref"]]
            return getattr(obj, v["field"]) if "field" in v else obj
        return {k: self.resolve(x) for k, x in v.items()}

    def split(
        self, call: dict[str, Any], args: dict[str, Any]
    ) -> tuple[list[Any], dict[str, Any]]:
        names = {p["name"] for p in call["params"]}
        unknown = set(args) - names
        if unknown:
            raise DriverError(f"{call['op']} has no parameter {sorted(unknown)}")
        pos: list[Any] = []
        kw: dict[str, Any] = {}
        for p in call["params"]:
            if p["name"] not in args:
                continue
            value = self.resolve(args[p["name"]])
            if p["kind"] == "positional":
                if len(pos) != [q["name"] for q in call["params"]].index(p["name"]):
                    raise DriverError(
                        f"{call['op']}: positional {p['name']} after a gap"
                    )
                pos.append(value)
            else:
                kw[p["name"]] = value
        return pos, kw

    def call_factory(self, name: str, args: dict[str, Any]) -> Any:
        call = self.api["calls"][name]
        pos, kw = self.split(call, args)
        cls = getattr(chasquimq, call["class"])
        return getattr(cls, call["name"])(*pos, **kw)

    def default_queue(self) -> Any:
        if self.queue is None:
            self.queue = chasquimq.Queue(self.queue_name, redis_url=self.url)
        return self.queue

    # -- operations ----------------------------------------------------------

    async def op(self, op: dict[str, Any]) -> dict[str, Any]:
        name = op["call"]
        args = op.get("args", {})
        try:
            value = await self.dispatch(name, args, op)
        except ChasquiError as e:
            return {"error": e.code}
        except DriverError:
            raise
        except Exception as e:  # a non-ChasquiMQ exception escaped the API
            return {"error": f"foreign:{type(e).__name__}: {e}"}
        if "save" in op:
            self.saved[op["save"]] = value
        return {"result": canon(value, self.api)}

    async def dispatch(
        self, name: str, args: dict[str, Any], op: dict[str, Any]
    ) -> Any:
        if name == "redis":
            argv = [self.resolve_arg(a) for a in args["argv"]]
            await self.r.execute_command(*argv)
            return None
        if name == "sleep":
            await asyncio.sleep(args["ms"] / 1000)
            return None
        if name == "worker.run":
            return await self.worker_run(op)
        if name == "events.collect":
            return await self.events_collect(args)
        call = self.api["calls"].get(name)
        if call is None:
            raise DriverError(f"unknown call {name}")
        if call["kind"] == "factory":
            return self.call_factory(name, args)
        if call["kind"] == "ctor":
            args = dict(args)
            if "redis_url" not in args:
                args["redis_url"] = self.url
            if call["class"] == "Worker" and "handler" not in args:
                obj = self.make_worker(args, {"returns": None}, [])
            else:
                pos, kw = self.split(call, args)
                obj = getattr(chasquimq, call["class"])(*pos, **kw)
            if call["class"] == "Queue":
                self.queue = obj  # later queue.* calls use it
            else:
                close = getattr(obj, "close", None)
                if close is not None:
                    await close()
            return None
        pos, kw = self.split(call, args)
        target = (
            self.saved[op["target"]] if call["class"] == "Job" else self.default_queue()
        )
        out = getattr(target, call["name"])(*pos, **kw)
        if asyncio.iscoroutine(out) or isinstance(out, asyncio.Future):
            out = await out
        return out

    def resolve_arg(self, a: Any) -> Any:
        if isinstance(a, dict) and "key" in a:
            return self.key(a["key"])
        if isinstance(a, dict) and "hex" in a:
            return bytes.fromhex(a["hex"])
        return str(a)

    def make_worker(
        self, args: dict[str, Any], behaviour: dict[str, Any], seen: list[Any]
    ) -> Any:
        returns = self.resolve(behaviour.get("returns"))

        async def handler(job: Any) -> Any:
            seen.append(
                {
                    "id": job.id,
                    "name": job.name,
                    "data": canon(job.data, self.api),
                    "attempt": job.attempt,
                    "created_at_ms": job.created_at_ms,
                }
            )
            below = job.attempt < behaviour.get("until_attempt", math.inf)
            if behaviour.get("hangs") and below:
                await asyncio.Event().wait()  # until the time limit cancels it
            raises = behaviour.get("raises")
            if raises and below:
                cls = UnrecoverableError if raises == "unrecoverable" else Error
                raise cls(behaviour.get("message", "failed"))
            return returns

        args = dict(args)
        args.setdefault("queue_name", self.queue_name)
        args["handler"] = handler
        pos, kw = self.split(self.api["calls"]["worker.new"], args)
        return chasquimq.Worker(*pos, **kw)

    async def worker_run(self, op: dict[str, Any]) -> Any:
        args = dict(op.get("args", {}))
        args.setdefault("redis_url", self.url)
        seen: list[dict[str, Any]] = []
        worker = self.make_worker(args, op.get("handler", {}), seen)
        task = asyncio.ensure_future(worker.run())
        try:
            deadline = time.monotonic() + op.get("timeout_ms", 15_000) / 1000
            while not await self.satisfied(op.get("until", {}), seen):
                if task.done():
                    task.result()  # run() raised: report it
                    raise DriverError("worker.run returned before `until` held")
                if time.monotonic() > deadline:
                    return {"timeout": op.get("until", {}), "observations": seen}
                await asyncio.sleep(0.02)
        finally:
            await worker.close()
            await asyncio.wait_for(task, 30)
        return sorted(seen, key=lambda o: (o["id"], o["attempt"]))

    async def satisfied(self, until: dict[str, Any], seen: list[Any]) -> bool:
        for suffix, n in until.get("xlen", {}).items():
            if await self.r.xlen(self.key(suffix)) != n:
                return False
        for suffix, n in until.get("zcard", {}).items():
            if await self.r.zcard(self.key(suffix)) != n:
                return False
        if "pending" in until:
            try:
                info = await self.r.xpending(self.key("stream"), "default")
                pending = int(info["pending"])
            except aioredis.ResponseError:
                pending = 0
            if pending != until["pending"]:
                return False
        for suffix in until.get("exists", []):
            if not await self.r.exists(self.key(suffix)):
                return False
        return len(seen) >= until.get("observations", 0)

    async def events_collect(self, args: dict[str, Any]) -> Any:
        want = await self.r.xlen(self.key("events"))
        args = dict(args)
        args.setdefault("queue_name", self.queue_name)
        args.setdefault("redis_url", self.url)
        pos, kw = self.split(self.api["calls"]["events.new"], args)
        out: list[Any] = []

        async def collect() -> None:
            async with chasquimq.QueueEvents(*pos, **kw) as events:
                if want == 0:
                    return
                async for ev in events:
                    out.append(ev)
                    if len(out) >= want:
                        break

        await asyncio.wait_for(collect(), 15)
        return out

    # -- the request ---------------------------------------------------------

    async def execute(self) -> dict[str, Any]:
        req = self.req
        clock = self.vector.get("clock")
        _native._testing_set_clock_ms(clock["now_ms"] if clock else None)
        _native._testing_set_id_seed(
            clock["id_seed"] + req["phase_index"] if clock else None
        )
        try:
            if req.get("flush"):
                await self.r.flushall()
            t0 = await self.server_ms()
            results: dict[str, Any] = {}
            for i, op in enumerate(self.vector["operations"]):
                if op.get("phase", "produce") == req["phase"]:
                    results[str(i)] = await self.op(op)
            if self.queue is not None:
                await self.queue.close()
            t1 = await self.server_ms()
            return {"results": results, "t0": t0, "t1": t1, "redis": await self.dump()}
        finally:
            _native._testing_set_clock_ms(None)
            _native._testing_set_id_seed(None)
            await self.r.aclose()

    async def dump(self) -> dict[str, Any]:
        """Every key, raw: bytes as hex, in Redis's order where it has one."""
        out: dict[str, Any] = {}
        for k in sorted(await self.r.keys("*")):
            t = (await self.r.type(k)).decode()
            entry: dict[str, Any] = {"type": t, "pttl": await self.r.pttl(k)}
            if t == "string":
                entry["value"] = (await self.r.get(k)).hex()
            elif t == "stream":
                entry["entries"] = [
                    {
                        "id": sid.decode(),
                        "fields": [[f.hex(), v.hex()] for f, v in fs.items()],
                    }
                    for sid, fs in await self.r.xrange(k)
                ]
                entry["groups"] = [
                    {
                        "name": g["name"].decode(),
                        "consumers": int(g["consumers"]),
                        "pending": int(g["pending"]),
                    }
                    for g in await self.r.xinfo_groups(k)
                ]
            elif t == "zset":
                entry["members"] = [
                    [m.hex(), repr(s) if not float(s).is_integer() else str(int(s))]
                    for m, s in await self.r.zrange(k, 0, -1, withscores=True)
                ]
            elif t == "hash":
                entry["fields"] = [
                    [f.hex(), v.hex()] for f, v in (await self.r.hgetall(k)).items()
                ]
            else:
                raise DriverError(f"unexpected key type {t} of {k!r}")
            out[k.decode()] = entry
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--api", required=True, help="the call table (api_table.py)")
    opts = ap.parse_args()
    with open(opts.api) as f:
        api = json.load(f)
    loop = asyncio.new_event_loop()
    print(json.dumps({"ready": "python", "version": chasquimq.version()}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            reply = loop.run_until_complete(Run(json.loads(line), api).execute())
        except Exception:
            reply = {"crash": traceback.format_exc()}
        print(json.dumps(reply), flush=True)
    loop.close()


if __name__ == "__main__":
    main()
