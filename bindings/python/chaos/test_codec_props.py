"""Fault 7 (Python half): property tests of the codecs the worker reads, fed
as raw bytes. Envelopes built by `msgpack` (any integer width, 3-5
elements, with and without a retry override) are XADDed and must reach the
handler unchanged; arbitrary bytes in `d`, or as the payload of a valid
envelope, must never crash the worker. The Rust half is
engine/tests/codec_props.rs."""

from __future__ import annotations

import itertools
import json
import os
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import redis
from harness import WORKER, key
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redisproc import RedisProcess

MAX_ATTEMPTS = 25
PROPS = settings(
    max_examples=int(os.environ.get("CHAOS_HYPOTHESIS_EXAMPLES", "150")),
    deadline=None,
    database=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_ids = itertools.count()


class RecordingWorker:
    """A chaos_worker.py in record mode: one `V` line per handled job."""

    def __init__(self, tmp: Path, url: str, queue: str) -> None:
        self.log = tmp / "record.log"
        self.queue = queue
        cfg = {
            "url": url,
            "queue": queue,
            "log": str(self.log),
            "mode": "record",
            "fsync": False,
            "max_attempts": MAX_ATTEMPTS,
            "concurrency": 32,
            "read_block_ms": 1000,
            "claim_min_idle_ms": 10_000,
        }
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), json.dumps(cfg)], stdout=subprocess.PIPE
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == b"READY"
        self.offset = 0
        self.records: dict[str, tuple[int, int, str, bytes]] = {}
        self.count = 0

    def poll(self) -> None:
        if not self.log.exists():
            return
        with open(self.log, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        cut = data.rfind(b"\n") + 1
        self.offset += cut
        for line in data[:cut].decode().splitlines():
            tag, jid, attempt, created, name, packed = line.split(" ")
            assert tag == "V"
            self.count += 1
            self.records[bytes.fromhex(jid).decode()] = (
                int(attempt),
                int(created),
                bytes.fromhex(name).decode(),
                bytes.fromhex(packed),
            )

    def wait_for(self, ids: set[str], timeout: float = 15) -> None:
        t0 = time.monotonic()
        while True:
            self.poll()
            if ids <= self.records.keys():
                return
            assert self.proc.poll() is None, "the worker process died"
            assert time.monotonic() - t0 < timeout, (
                f"missing {ids - self.records.keys()}"
            )
            time.sleep(0.005)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="module")
def rw(
    redis_server: RedisProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RecordingWorker, redis.Redis]]:
    queue = "chaos-codec-props"
    w = RecordingWorker(tmp_path_factory.mktemp("props"), redis_server.url, queue)
    r = redis.Redis.from_url(redis_server.url)
    try:
        yield w, r
    finally:
        w.stop()
        r.close()


# ---- value strategies ------------------------------------------------------

msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def pack_uint(v: int, width: str) -> bytes:
    """`v` as the msgpack integer format `width` (any that can hold it)."""
    if width == "fix":
        return bytes([v])
    fmt = {
        "u8": (0xCC, ">B"),
        "u16": (0xCD, ">H"),
        "u32": (0xCE, ">I"),
        "u64": (0xCF, ">Q"),
        "i8": (0xD0, ">b"),
        "i16": (0xD1, ">h"),
        "i32": (0xD2, ">i"),
        "i64": (0xD3, ">q"),
    }[width]
    return bytes([fmt[0]]) + struct.pack(fmt[1], v)


def widths_for(v: int) -> list[str]:
    out = []
    if v < 128:
        out.append("fix")
    for w, hi in (
        ("u8", 255),
        ("u16", 2**16 - 1),
        ("u32", 2**32 - 1),
        ("u64", 2**64 - 1),
    ):
        if v <= hi:
            out.append(w)
    for w, hi in (
        ("i8", 127),
        ("i16", 2**15 - 1),
        ("i32", 2**31 - 1),
        ("i64", 2**63 - 1),
    ):
        if v <= hi:
            out.append(w)
    return out


@st.composite
def uints(draw: st.DrawFn, lo: int, hi: int) -> tuple[int, bytes]:
    v = draw(st.integers(min_value=lo, max_value=hi))
    return v, pack_uint(v, draw(st.sampled_from(widths_for(v))))


backoffs = st.one_of(
    st.none(),
    st.tuples(
        st.sampled_from(["fixed", "exponential"]),
        st.integers(0, 2**64 - 1),
        st.none() | st.integers(0, 2**64 - 1),
        st.none() | st.floats(allow_nan=False, allow_infinity=False),
        st.none() | st.integers(0, 2**64 - 1),
    ).map(list),
)


@st.composite
def envelopes(draw: st.DrawFn) -> dict[str, Any]:
    """A job as raw wire bytes plus what the handler must see."""
    n = next(_ids)
    job_id = f"{n}:{draw(st.text(max_size=30))}"
    data = draw(msgpack_values)
    payload = msgpack.packb(data, use_bin_type=True)
    created, created_b = draw(uints(0, 2**64 - 1))
    override = draw(
        st.none() | st.tuples(st.none() | st.integers(1, 2**32 - 1), backoffs)
    )
    limit = MAX_ATTEMPTS
    if override is not None and override[0] is not None:
        limit = override[0]
    attempt, attempt_b = draw(uints(0, min(limit, 1_000) - 1))
    shape = draw(
        st.sampled_from([3, 4, 5] if attempt == 0 and override is None else [4, 5])
    )
    if override is not None:
        shape = 5
    parts = [
        msgpack.packb(job_id),
        msgpack.packb(payload, use_bin_type=True),
        created_b,
    ]
    if shape >= 4:
        parts.append(attempt_b)
    if shape == 5:
        parts.append(msgpack.packb(None if override is None else list(override)))
    d = bytes([0x90 + shape]) + b"".join(parts)
    name = draw(st.text(max_size=40).filter(lambda s: len(s.encode()) <= 256))
    fields: dict[bytes, bytes] = {b"d": d}
    if name or draw(st.booleans()):
        fields[b"n"] = name.encode()
    return {
        "id": job_id,
        "fields": fields,
        "expect": (attempt + 1, created, name, msgpack.packb(data, use_bin_type=True)),
    }


@given(jobs=st.lists(envelopes(), min_size=1, max_size=8))
@PROPS
def test_msgpack_envelopes_reach_the_handler_unchanged(
    rw: tuple[RecordingWorker, redis.Redis], jobs: list[dict[str, Any]]
) -> None:
    w, r = rw
    for j in jobs:
        r.xadd(key(w.queue, "stream"), j["fields"])  # type: ignore[arg-type]
    w.wait_for({j["id"] for j in jobs})
    for j in jobs:
        assert w.records[j["id"]] == j["expect"]


def _dlq_since(r: redis.Redis, queue: str, ids: set[bytes]) -> list[dict[bytes, bytes]]:
    return [f for _i, f in r.xrange(key(queue, "dlq")) if f[b"source_id"] in ids]


def _settle(
    w: RecordingWorker, r: redis.Redis, stream_ids: set[bytes]
) -> list[dict[bytes, bytes]]:
    """Adds a sentinel job, waits for it and for an empty stream; returns the
    DLQ entries of `stream_ids`."""
    sentinel = f"sentinel-{next(_ids)}"
    r.xadd(
        key(w.queue, "stream"),
        {b"d": msgpack.packb([sentinel, b"\xc0", 0, 0], use_bin_type=True)},
    )
    w.wait_for({sentinel})
    t0 = time.monotonic()
    while (
        r.xlen(key(w.queue, "stream"))
        or r.xpending(key(w.queue, "stream"), "default")["pending"]
    ):
        assert time.monotonic() - t0 < 15, "the stream did not drain"
        time.sleep(0.005)
    assert w.proc.poll() is None, "the worker process died"
    return _dlq_since(r, w.queue, stream_ids)


def _mutate(data: st.DataObject, b: bytes) -> bytes:
    ops = data.draw(
        st.lists(st.tuples(st.integers(0, 3), st.integers(0, 255)), max_size=4)
    )
    out = bytearray(b)
    for op, v in ops:
        i = v % (len(out) + 1)
        if op == 0 and out:
            out[i % len(out)] ^= 1 << (v % 8)
        elif op == 1:
            out.insert(i, v)
        elif op == 2 and out:
            del out[i % len(out)]
        else:
            out = out[:i]
    return bytes(out)


@given(data=st.data())
@PROPS
def test_arbitrary_bytes_in_d_never_crash_the_worker(
    rw: tuple[RecordingWorker, redis.Redis], data: st.DataObject
) -> None:
    w, r = rw
    good = data.draw(envelopes())["fields"][b"d"]
    blobs = data.draw(
        st.lists(
            st.binary(max_size=64) | st.just(good).map(lambda b: _mutate(data, b)),
            min_size=1,
            max_size=10,
        )
    )
    w.poll()
    before = w.count
    ids = {r.xadd(key(w.queue, "stream"), {b"d": b}) for b in blobs}
    dlq = _settle(w, r, ids)
    handled = w.count - before - 1  # minus the sentinel
    assert len(dlq) + handled == len(blobs)
    assert {f[b"reason"] for f in dlq} <= {
        b"decode_failed",
        b"stalled",
        b"oversize_payload",
    }


@given(payload=st.binary(max_size=64))
@PROPS
def test_arbitrary_payload_bytes_are_handled_or_dead_lettered(
    rw: tuple[RecordingWorker, redis.Redis], payload: bytes
) -> None:
    w, r = rw
    job_id = f"payload-{next(_ids)}"
    try:
        expect: bytes | None = msgpack.packb(
            msgpack.unpackb(payload, raw=False, strict_map_key=False), use_bin_type=True
        )
    except Exception:
        expect = None
    d = msgpack.packb([job_id, payload, 1, 0], use_bin_type=True)
    sid = r.xadd(key(w.queue, "stream"), {b"d": d})
    dlq = _settle(w, r, {sid})
    if expect is None:
        assert job_id not in w.records
        assert [f[b"reason"] for f in dlq] == [b"decode_failed"]
    else:
        assert dlq == []
        assert w.records[job_id][3] == expect
