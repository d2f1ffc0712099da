"""Behaviour of `Queue` (signatures, docs and argument validation are
generated in `_generated/api.py`)."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from chasquimq import _codec, _completions
from chasquimq._events import ResultWaiters
from chasquimq._generated.errors import (
    ClosedError,
    InvalidArgumentError,
    OperationTimeoutError,
)
from chasquimq._generated.types import Job
from chasquimq._native import Producer

if TYPE_CHECKING:
    from chasquimq._generated.types import RepeatableMeta

if issubclass(OperationTimeoutError, asyncio.TimeoutError):
    WaitTimeoutError: type[Exception] = OperationTimeoutError
else:  # Python 3.10: asyncio.TimeoutError is not the builtin TimeoutError

    class WaitTimeoutError(OperationTimeoutError, asyncio.TimeoutError):  # type: ignore[no-redef]
        """wait_for_result's deadline, catchable as either exception."""


def delay_to_ms(delay_ms: Any, delay: timedelta | None) -> int | None:
    """Milliseconds from now, from either delay form (already type-checked)."""
    if delay is not None:
        return int(delay.total_seconds() * 1000)
    if delay_ms is None:
        return None
    if isinstance(delay_ms, datetime):
        when = delay_ms if delay_ms.tzinfo else delay_ms.replace(tzinfo=timezone.utc)
        ms = (when - datetime.now(timezone.utc)).total_seconds() * 1000
        return max(0, math.ceil(ms))
    return int(delay_ms)


def backoff_to_native(backoff: Any) -> dict[str, Any] | None:
    """BackoffLike (int ms, BackoffSpec, raw dict) to the native dict."""
    if backoff is None:
        return None
    if isinstance(backoff, bool):
        raise InvalidArgumentError(
            "backoff must be an int (ms), a BackoffSpec or a dict, not a bool"
        )
    if isinstance(backoff, int):
        return {"kind": "fixed", "delay_ms": backoff}
    native = getattr(backoff, "_native", None)
    if native is not None:
        out: dict[str, Any] = native()
        return out
    return dict(backoff)


def options_dict(
    *,
    delay_ms: Any = None,
    delay: timedelta | None = None,
    attempts: int | None = None,
    backoff: Any = None,
    job_id: str | None = None,
    timeout_ms: int | None = None,
) -> dict[str, Any] | None:
    """Per-job options as the native producer takes them; None when empty."""
    ms = delay_to_ms(delay_ms, delay)
    opts: dict[str, Any] = {}
    if ms:
        opts["delay_ms"] = ms
    if attempts is not None:
        opts["attempts"] = attempts
    b = backoff_to_native(backoff)
    if b is not None:
        opts["backoff"] = b
    if job_id is not None:
        opts["job_id"] = job_id
    if timeout_ms is not None:
        opts["timeout_ms"] = timeout_ms
    return opts or None


class QueueBase:
    __slots__ = (
        "__weakref__",
        "_command_timeout_ms",
        "_is_closed",
        "_lock",
        "_max_delay_secs",
        "_max_stream_len",
        "_name",
        "_producer",
        "_redis_url",
        "_results",
    )

    def _init(
        self,
        name: str,
        *,
        redis_url: str,
        max_stream_len: int | None,
        max_delay_secs: int | None,
        command_timeout_ms: int | None,
    ) -> None:
        # Ints the engine cannot hold are bad values, not an OverflowError on first use.
        for field, value in (
            ("max_stream_len", max_stream_len),
            ("max_delay_secs", max_delay_secs),
            ("command_timeout_ms", command_timeout_ms),
        ):
            if value is not None and value > 2**63 - 1:
                raise InvalidArgumentError(
                    f"{field} must be at most {2**63 - 1} (got {value}); pass a smaller int"
                )
        self._name = name
        self._redis_url = redis_url
        self._max_stream_len = max_stream_len
        self._max_delay_secs = max_delay_secs
        self._command_timeout_ms = command_timeout_ms
        self._producer: Producer | None = None
        self._lock = threading.Lock()
        self._is_closed = False
        self._results = ResultWaiters(name, redis_url)

    def __repr__(self) -> str:
        return f"Queue({self._name!r})"

    def _native(self) -> Producer:
        if self._is_closed:
            raise ClosedError(f"Queue {self._name!r} is closed; create a new Queue")
        p = self._producer
        if p is None:
            with self._lock:
                p = self._producer
                if p is None:
                    kw: dict[str, int] = {}
                    if self._max_stream_len is not None:
                        kw["max_stream_len"] = self._max_stream_len
                    if self._max_delay_secs is not None:
                        kw["max_delay_secs"] = self._max_delay_secs
                    if self._command_timeout_ms is not None:
                        kw["command_timeout_ms"] = self._command_timeout_ms
                    p = self._producer = Producer(self._redis_url, self._name, **kw)
        return p

    def _job(self, job_id: str, name: str, data: Any, created_at_ms: int) -> Job:
        return Job(job_id, name, data, 0, created_at_ms, _queue=self)  # type: ignore[arg-type]

    async def _add(
        self,
        name: str,
        data: Any,
        *,
        delay_ms: Any = None,
        delay: timedelta | None = None,
        attempts: int | None = None,
        backoff: Any = None,
        job_id: str | None = None,
        timeout_ms: int | None = None,
        repeat: Any = None,
        missed_fires: Any = None,
    ) -> Job:
        if repeat is not None:
            if delay_ms is not None or delay is not None:
                raise InvalidArgumentError(
                    "delay_ms/delay: a repeatable's first fire follows its pattern; "
                    "use start_after_ms on upsert_repeatable_job instead"
                )
            if timeout_ms is not None:
                raise InvalidArgumentError(
                    "timeout_ms: a repeatable's fires carry no per-job time limit; "
                    "set job_timeout_ms on the Worker instead"
                )
            return await self._upsert(
                name,
                data,
                repeat=repeat,
                job_id=job_id,
                attempts=attempts,
                backoff=backoff,
                missed_fires=missed_fires,
            )
        payload = _codec.pack("data", data)
        opts = options_dict(
            delay_ms=delay_ms,
            delay=delay,
            attempts=attempts,
            backoff=backoff,
            job_id=job_id,
            timeout_ms=timeout_ms,
        )
        native = self._native()
        jid, created = await _completions.call(
            lambda c, rid: native.add_submit(c, rid, name, payload, opts),
            lambda: native.add(name, payload, opts),
        )
        return self._job(jid, name, data, created)

    async def _add_unique(
        self,
        name: str,
        data: Any,
        *,
        job_id: str,
        delay_ms: Any = None,
        delay: timedelta | None = None,
        attempts: int | None = None,
        backoff: Any = None,
        repeat: Any = None,
        timeout_ms: int | None = None,
    ) -> Job:
        return await self._add(
            name,
            data,
            delay_ms=delay_ms,
            delay=delay,
            attempts=attempts,
            backoff=backoff,
            job_id=job_id,
            timeout_ms=timeout_ms,
            repeat=repeat,
        )

    async def _add_bulk(self, jobs: Sequence[dict[str, Any]]) -> list[Job]:
        # Repeatable entries are upserts (their own round trip each); all
        # other entries, whatever their options, go in one pipeline.
        entries: list[tuple[str, bytes, dict[str, Any] | None]] = []
        plain: list[int] = []
        out: list[Job | None] = [None] * len(jobs)
        packb = _codec.packb
        for i, j in enumerate(jobs):
            if len(j) > 2 or "name" not in j:
                if j.get("repeat") is not None:
                    if j.get("timeout_ms") is not None:
                        raise InvalidArgumentError(
                            f"jobs[{i}].timeout_ms: a repeatable's fires carry no per-job "
                            "time limit; set job_timeout_ms on the Worker instead"
                        )
                    out[i] = await self._upsert(
                        j.get("name", ""),
                        j["data"],
                        repeat=j["repeat"],
                        job_id=j.get("job_id"),
                        attempts=j.get("attempts"),
                        backoff=j.get("backoff"),
                        missed_fires=None,
                    )
                    continue
                opts = options_dict(
                    delay_ms=j.get("delay_ms"),
                    delay=j.get("delay"),
                    attempts=j.get("attempts"),
                    backoff=j.get("backoff"),
                    job_id=j.get("job_id"),
                    timeout_ms=j.get("timeout_ms"),
                )
            else:
                opts = None  # just name and data: the common case, kept cheap
            try:
                payload = packb(j["data"])
            except Exception:
                payload = _codec.pack(f"jobs[{i}].data", j["data"])  # raises, typed
            entries.append((j.get("name", ""), payload, opts))
            plain.append(i)
        if entries:
            native = self._native()
            added = await _completions.call(
                lambda c, rid: native.add_bulk_submit(c, rid, entries),
                lambda: native.add_bulk(entries),
            )
            job = self._job
            for i, (jid, created) in zip(plain, added, strict=True):
                j = jobs[i]
                out[i] = job(jid, j.get("name", ""), j["data"], created)
        return [job for job in out if job is not None]

    async def _cancel_delayed(self, job_id: str) -> bool:
        return bool(await self._native().cancel_delayed(job_id))

    async def _peek_dlq(self, limit: int) -> list[dict[str, Any]]:
        entries = await self._native().peek_dlq(limit)
        for e in entries:
            env = _codec.decode_envelope(e["payload"])
            if env is not None:
                e.update(env)
        return entries

    async def _replay_dlq(self, limit: int) -> int:
        return await self._native().replay_dlq(limit)

    async def _upsert(
        self,
        name: str,
        data: Any,
        *,
        repeat: Any,
        job_id: str | None = None,
        limit: int | None = None,
        start_after_ms: int | None = None,
        end_before_ms: int | None = None,
        attempts: int | None = None,
        backoff: Any = None,
        missed_fires: Any = None,
    ) -> Job:
        pattern = repeat.to_dict() if hasattr(repeat, "to_dict") else dict(repeat)
        spec: dict[str, Any] = {
            "key": job_id,
            "name": name,
            "payload": _codec.pack("data", data),
            "pattern": pattern,
            "limit": limit,
            "start_after_ms": start_after_ms,
            "end_before_ms": end_before_ms,
            "attempts": attempts,
            "backoff": backoff_to_native(backoff),
        }
        if missed_fires is not None:
            spec["missed_fires"] = (
                missed_fires._to_dict()
                if hasattr(missed_fires, "_to_dict")
                else dict(missed_fires)
            )
        key = await self._native().upsert_repeatable(spec)
        return self._job(key, name, data, int(time.time() * 1000))

    async def _upsert_repeatable_job(
        self,
        name: str,
        data: Any,
        *,
        repeat: Any,
        limit: int | None,
        start_after_ms: int | None,
        end_before_ms: int | None,
        attempts: int | None,
        backoff: Any,
        job_id: str | None,
        missed_fires: Any,
    ) -> Job:
        return await self._upsert(
            name,
            data,
            repeat=repeat,
            job_id=job_id,
            limit=limit,
            start_after_ms=start_after_ms,
            end_before_ms=end_before_ms,
            attempts=attempts,
            backoff=backoff,
            missed_fires=missed_fires,
        )

    async def _get_repeatable_jobs(self, limit: int) -> list[RepeatableMeta]:
        from chasquimq._generated.types import (
            MissedFiresPolicy,
            RepeatableMeta,
            RepeatPattern,
        )

        metas = []
        for m in await self._native().repeatables(limit):
            p = m["pattern"]
            pattern = (
                RepeatPattern(kind="cron", expression=p["expression"], tz=p["tz"])
                if p["kind"] == "cron"
                else RepeatPattern(kind="every", interval_ms=p["interval_ms"])
            )
            mf = m["missed_fires"]
            metas.append(
                RepeatableMeta(
                    key=m["key"],
                    job_name=m["job_name"],
                    pattern=pattern,
                    next_fire_ms=m["next_fire_ms"],
                    limit=m["limit"],
                    start_after_ms=m["start_after_ms"],
                    end_before_ms=m["end_before_ms"],
                    missed_fires=MissedFiresPolicy(
                        kind=mf["kind"], max_catchup=mf.get("max_catchup")
                    ),
                )
            )
        return metas

    async def _remove_repeatable_by_key(self, key: str) -> bool:
        return bool(await self._native().remove_repeatable(key))

    async def _get_job_result(self, job_id: str) -> Any:
        (raw,) = await self._native().get_results([job_id])
        return None if raw is None else _codec.unpack(raw)

    async def _get_job_result_bulk(self, job_ids: Sequence[str]) -> list[Any]:
        raws = await self._native().get_results(list(job_ids))
        return [None if raw is None else _codec.unpack(raw) for raw in raws]

    async def _wait_result(
        self, job_id: str, timeout: float, poll_interval: float
    ) -> Any:
        """Job.wait_for_result: reads the result when the job's `completed`
        event arrives (one shared listener per Queue), and every
        `poll_interval` anyway (events may be disabled)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._native()  # ClosedError before anything starts
        done = await self._results.subscribe(job_id)
        try:
            while True:
                # Checked before the read: a `completed` seen before it means
                # the read reflects that completion (same script).
                completed = done is not None and done.done() and done.result()
                (raw,) = await self._native().get_results([job_id])
                if raw is not None:
                    return _codec.unpack(raw)
                if completed:
                    return None  # completed without a stored result
                if done is not None and done.done():
                    continue  # completed (or closed) during the read: look again
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise WaitTimeoutError(
                        f"no result for job {job_id!r} within {timeout} s"
                    )
                pause = min(poll_interval, remaining)
                if done is None:
                    await asyncio.sleep(pause)
                else:
                    await asyncio.wait({done}, timeout=pause)
        finally:
            if done is not None:
                self._results.unsubscribe(job_id, done)

    async def _close(self) -> None:
        if self._is_closed:
            return
        self._is_closed = True
        await self._results.close()
        p, self._producer = self._producer, None
        if p is not None:
            await p.close()

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._close()
