"""Fault 5: hostile entries XADDed straight into the stream. Each lands in the
DLQ with the right reason; the worker neither crashes nor grows its memory
over 20,000 of them."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import msgpack
import redis.asyncio as aioredis
from harness import WorkerProc, collect_runs, key, report, wait_drained

from chasquimq import Queue

N_WARMUP = 2_000
N_HOSTILE = 20_000
RSS_SLACK_KIB = 16 * 1024


def _env(*parts: object) -> bytes:
    return msgpack.packb(list(parts), use_bin_type=True)


GOOD = _env("01HOSTILEGOODENVELOPE00000", msgpack.packb({"x": 1}), 1_700_000_000_000, 0)
DEEP = b"\x91" * 10_000 + b"\xc0"

Fields = dict[bytes, bytes]


def _variants(rng: random.Random) -> dict[str, tuple[Callable[[], Fields], str]]:
    """name -> (entry factory, expected DLQ reason)."""

    def d(b: bytes) -> Callable[[], Fields]:
        return lambda: {b"d": b, b"n": b"hostile"}

    return {
        "truncated": (
            lambda: {b"d": GOOD[: rng.randrange(1, len(GOOD))]},
            "decode_failed",
        ),
        "empty-d": (d(b""), "decode_failed"),
        "array-2": (d(_env("id", b"x")), "decode_failed"),
        "array-6": (d(_env("id", b"x", 1, 0, None, 7)), "decode_failed"),
        "map-not-array": (d(msgpack.packb({"id": "x"})), "decode_failed"),
        "deep-nesting": (d(DEEP), "decode_failed"),
        # A valid head whose retry override hides the deep value: the skip
        # of its extra elements has a depth limit.
        "deep-in-override": (
            d(b"\x95\xa2id\xc4\x01\xc0\x01\x00\x93\xc0\xc0" + DEEP),
            "decode_failed",
        ),
        # A valid envelope whose payload is 10,000-deep msgpack: the Python
        # side cannot decode it (no handler runs).
        "deep-payload": (
            d(_env("deep-payload", DEEP, 1, 0)),
            "decode_failed",
        ),
        "str32-4gib": (d(b"\x94\xdb\xff\xff\xff\xff" + b"abc"), "decode_failed"),
        "bin32-4gib": (d(b"\x94\xa2id\xc6\xff\xff\xff\xff" + b"abc"), "decode_failed"),
        "array32-4g": (d(b"\xdd\xff\xff\xff\xff\xc0"), "decode_failed"),
        "id-int": (d(_env(7, b"x", 1, 0)), "decode_failed"),
        "payload-str": (d(msgpack.packb(["id", "text", 1, 0])), "decode_failed"),
        "created-negative": (d(_env("id", b"x", -5, 0)), "decode_failed"),
        "attempt-float": (d(_env("id", b"x", 1, 1.5)), "decode_failed"),
        "trailing-bytes": (d(GOOD + b"\x00"), "decode_failed"),
        "garbage": (lambda: {b"d": b"\xc1" + rng.randbytes(30)}, "decode_failed"),
        "missing-d": (lambda: {b"n": b"no-envelope"}, "malformed"),
        "other-field-only": (lambda: {b"x": GOOD}, "malformed"),
        "name-257-bytes": (lambda: {b"d": GOOD, b"n": b"n" * 257}, "malformed"),
        "name-not-utf8": (lambda: {b"d": GOOD, b"n": b"\xff\xfe"}, "malformed"),
    }


async def _flood(
    r: aioredis.Redis,
    queue: str,
    n: int,
    variants: dict[str, tuple[Callable[[], Fields], str]],
    kinds: dict[bytes, str],
) -> None:
    names = sorted(variants)
    stream = key(queue, "stream")
    for start in range(0, n, 500):
        pipe = r.pipeline(transaction=False)
        batch = [names[(start + i) % len(names)] for i in range(min(500, n - start))]
        for name in batch:
            pipe.xadd(stream, variants[name][0]())  # type: ignore[arg-type]
        ids = await pipe.execute()
        kinds.update(zip(ids, batch, strict=True))


async def test_hostile_entries_go_to_the_dlq_without_leaks(
    tmp_path: Path, redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    rng = random.Random(5)
    variants = _variants(rng)
    w = WorkerProc(
        tmp_path,
        redis_url,
        queue_name,
        concurrency=64,
        claim_min_idle_ms=5_000,
        read_block_ms=500,
    )
    try:
        await w.start()
        async with Queue(queue_name, redis_url=redis_url) as q:
            await q.add("warm", {"ms": 0})
        kinds: dict[bytes, str] = {}
        await _flood(r, queue_name, N_WARMUP, variants, kinds)
        await wait_drained(r, queue_name, timeout=60)
        rss_before = w.rss_kib()
        t0 = time.monotonic()
        await _flood(r, queue_name, N_HOSTILE, variants, kinds)
        await wait_drained(r, queue_name, timeout=120)
        elapsed = time.monotonic() - t0
        rss_after = w.rss_kib()
        async with Queue(queue_name, redis_url=redis_url) as q:
            sentinel = await q.add("after", {"ms": 0})
        await wait_drained(r, queue_name, timeout=30)

        assert w.alive, "the worker died"
        assert [run.end for run in collect_runs([w])[sentinel.id]] == ["C"]
        got: Counter[tuple[str, str]] = Counter()
        wrong: list[tuple[str, str, bytes]] = []
        for _id, f in await r.xrange(key(queue_name, "dlq")):
            kind = kinds[f[b"source_id"]]
            reason = f[b"reason"].decode()
            got[(kind, reason)] += 1
            if reason != variants[kind][1]:
                wrong.append((kind, reason, f.get(b"detail", b"")[:200]))
        routed = sum(got.values())
        growth = rss_after - rss_before
        report(
            "hostile-entries",
            enqueued=N_WARMUP + N_HOSTILE,
            lost=len(kinds) - routed,
            duplicated=routed - len(kinds) if routed > len(kinds) else 0,
            kinds=len(variants),
            rss_kib=f"{rss_before}->{rss_after}",
            rss_growth_kib=growth,
            entries_per_s=round(N_HOSTILE / elapsed),
        )
        assert wrong == [], wrong[:5]
        assert routed == len(kinds) == N_WARMUP + N_HOSTILE
        assert {k for k, _ in got} == set(variants)
        assert growth < RSS_SLACK_KIB, f"worker RSS grew by {growth} KiB"
    finally:
        w.kill()
        if w.proc is not None:
            await w.wait()


def test_deep_override_bytes_are_what_the_comment_says() -> None:
    """The hand-built deep-in-override head: [id, bin, 1, 0, [nil, nil, deep...]]."""
    head = b"\x95\xa2id\xc4\x01\xc0\x01\x00\x93\xc0\xc0"
    up = msgpack.Unpacker(raw=False)
    up.feed(head + b"\xc0")
    assert next(up) == ["id", b"\xc0", 1, 0, [None, None, None]]
