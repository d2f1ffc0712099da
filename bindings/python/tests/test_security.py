"""Credentials, ACL users and TLS end to end, secrets kept out of errors and
reprs, and the input limits every binding shares (queue names from
spec/vectors/queue_names.json, job-name and payload sizes on the worker).

Each deployment is a redis-server started here: one with a restricted ACL
user (the `ACL SETUSER` line of docs/security.md, run verbatim), and TLS
servers with certificates made by `openssl` for the test (those tests skip
only when `openssl` is missing).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import redis.asyncio as aioredis
from helpers import dlq_entries, envelope, fast_worker, key, now_ms, running, wait_until
from lifecycle import ENC, ROOT, SECRET, acl_setuser_line, no_secret, run_lifecycle
from redisproc import RedisProcess, free_port

from chasquimq import (
    AuthenticationError,
    ChasquiError,
    InvalidArgumentError,
    Job,
    Queue,
    QueueEvents,
    RedisConnectionError,
    Worker,
)

USER = "chasqui"
# Connect and TLS failures must surface well within this (the engine's
# connect timeout is 5 s; failures should come at once).
BOUND_S = 6.0

needs_openssl = pytest.mark.skipif(
    shutil.which("openssl") is None,
    reason="openssl is not on PATH (the TLS tests make certificates with it)",
)


async def _h(job: Job) -> None:
    return None


async def fail_everywhere(url: str, cls: type[ChasquiError]) -> list[ChasquiError]:
    """Each entry point that connects (Queue.add, Worker.run, the first read
    of QueueEvents) raises `cls` well within BOUND_S, without the password."""
    q = Queue("q", redis_url=url)
    # start_timeout_ms=0: one attempt (tests/test_start.py covers the wait).
    w = Worker("q", _h, redis_url=url, start_timeout_ms=0)
    ev = QueueEvents("q", redis_url=url, block_ms=100)
    out = []
    try:
        for what, call in (
            ("Queue.add", lambda: q.add("x", 1)),
            ("Worker.run", w.run),
            ("QueueEvents", ev.__anext__),
        ):
            t0 = time.monotonic()
            with pytest.raises(cls) as info:
                await asyncio.wait_for(call(), 15)
            assert time.monotonic() - t0 < BOUND_S, what
            no_secret(info.value)
            out.append(info.value)
    finally:
        await q.close()
        await w.close()
        await ev.close()
    return out


# ---------------------------------------------------------------------------
# ACL user and passwords
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def acl_server() -> Iterator[RedisProcess]:
    """A server whose admin is the passwordless default user (the test's
    own client) and where `chasqui` is created from docs/security.md."""
    server = RedisProcess().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
async def acl_admin(acl_server: RedisProcess) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(acl_server.url + "/3", decode_responses=False)
    await client.execute_command(*acl_setuser_line())
    await client.execute_command("ACL", "LOG", "RESET")
    try:
        yield client
    finally:
        await client.aclose()


def user_url(
    server: RedisProcess, password: str = ENC, user: str = USER, db: int = 3
) -> str:
    return f"redis://{user}:{password}@{server.host}:{server.port}/{db}"


async def test_restricted_acl_user_runs_the_whole_lifecycle(
    acl_server: RedisProcess, acl_admin: aioredis.Redis, queue_name: str
) -> None:
    """The documented ACL line is enough for every feature (database 3, a
    password with reserved characters), and Redis refused nothing: no
    ACL LOG entry, so no swallowed refusal either."""
    await run_lifecycle(user_url(acl_server), queue_name, acl_admin)
    assert await acl_admin.execute_command("ACL", "LOG") == []
    # The jobs went to database 3, under the queue's hash tag only.
    keys = await acl_admin.keys("*")
    assert keys and all(
        k.startswith(f"{{chasqui:{queue_name}}}:".encode()) for k in keys
    )


async def test_restricted_user_cannot_leave_its_keys(
    acl_server: RedisProcess, acl_admin: aioredis.Redis
) -> None:
    raw = aioredis.from_url(user_url(acl_server))
    try:
        for cmd in (
            ("SET", "other", "1"),
            ("GET", "{other}:stream"),
            ("FLUSHALL",),
            ("KEYS", "*"),
            ("CONFIG", "GET", "*"),
        ):
            with pytest.raises(aioredis.ResponseError, match=r"NOPERM|no permissions"):
                await raw.execute_command(*cmd)
    finally:
        await raw.aclose()
    await acl_admin.execute_command("ACL", "LOG", "RESET")


@pytest.mark.parametrize(
    "url_of",
    [
        lambda s: user_url(s, password="wrong" + ENC),
        lambda s: user_url(s, user="nobody"),
    ],
    ids=["wrong-password", "unknown-user"],
)
async def test_wrong_credentials_are_an_auth_error_at_once(
    acl_server: RedisProcess, acl_admin: aioredis.Redis, url_of: Any
) -> None:
    for exc in await fail_everywhere(url_of(acl_server), AuthenticationError):
        assert exc.code == "auth"
        assert isinstance(exc, PermissionError)


async def test_password_required_but_missing_is_an_auth_error() -> None:
    with RedisProcess(extra_args=["--requirepass", SECRET]) as server:
        t0 = time.monotonic()
        with pytest.raises(AuthenticationError) as info:
            await asyncio.wait_for(Queue("q", redis_url=server.url).add("x", 1), 15)
        assert time.monotonic() - t0 < BOUND_S
        no_secret(info.value)
        # And with it, the default user works (`redis://:password@host`).
        async with Queue(
            "q", redis_url=f"redis://:{ENC}@{server.host}:{server.port}"
        ) as q:
            await q.add("x", 1)


# ---------------------------------------------------------------------------
# Secrets in errors and reprs
# ---------------------------------------------------------------------------


def test_password_is_not_in_reprs(acl_server: RedisProcess) -> None:
    url = user_url(acl_server)
    assert SECRET not in repr(Queue("q", redis_url=url))
    assert ENC not in repr(Queue("q", redis_url=url))
    w = Worker("q", _h, redis_url=url)
    assert SECRET not in repr(w) and ENC not in repr(w)
    assert SECRET not in repr(QueueEvents("q", redis_url=url)) and ENC not in repr(
        QueueEvents("q", redis_url=url)
    )


@pytest.mark.parametrize(
    "url",
    [
        f"redis://u:{ENC}@127.0.0.1:99999",
        f"redis://u:{ENC}@127.0.0.1:port",
        f"redis://u:{ENC}@/0",
        f"http://u:{ENC}@127.0.0.1:6379",
        f"redis://u:{ENC}@127.0.0.1:6379/notadb",
        f"redis://u:{ENC}@127.0.0.1:6379/?tls_ca_file=/x.pem",
        f"rediss://u:{ENC}@127.0.0.1:6379/?tls_ca=/x.pem",
        f"redis-cluster://u:{ENC}@127.0.0.1:6379?node=nohostport",
    ],
)
async def test_bad_urls_never_echo_the_password(url: str) -> None:
    """Rejected by the Python checks or by the engine (the native classes
    take the URL unchecked), always without the password."""
    from chasquimq._native import Consumer, Producer

    attempts = [
        lambda: Queue("q", redis_url=url),
        lambda: Worker("q", _h, redis_url=url),
        lambda: Producer(url, "q"),
        lambda: Consumer(url, "q"),
    ]
    failures = 0
    for make in attempts:
        try:
            obj = make()
        except ChasquiError as e:
            assert isinstance(e, InvalidArgumentError), e
            no_secret(e)
            failures += 1
            continue
        # The engine accepted the URL's shape; connecting must fail cleanly.
        if isinstance(obj, Producer):
            with pytest.raises(ChasquiError) as info:
                await asyncio.wait_for(obj.add("x", b"\x01", None), 15)
            no_secret(info.value)
    assert failures >= 2, "the public constructors must reject the URL"


async def test_refused_connection_never_echoes_the_password() -> None:
    await _connection_error_in_bound(f"redis://u:{ENC}@127.0.0.1:{free_port()}/0")


# ---------------------------------------------------------------------------
# TLS
# ---------------------------------------------------------------------------


def _openssl(*args: str, cwd: str) -> None:
    subprocess.run(
        ["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30
    )


def _ca(d: str, name: str) -> None:
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )  # fmt: skip


def _leaf(d: str, name: str, ca: str, ext: str) -> None:
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
        cwd=d,
    )  # fmt: skip
    Path(d, f"{name}.ext").write_text(ext)
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
        "-set_serial", str(int(time.time() * 1000)), "-days", "2",
        "-out", f"{name}.crt", "-extfile", f"{name}.ext",
        cwd=d,
    )  # fmt: skip


@pytest.fixture(scope="module")
def certs() -> Iterator[Path]:
    """A CA with a server certificate (127.0.0.1, localhost) and a client
    certificate, and an unrelated CA."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not on PATH")
    d = tempfile.mkdtemp(prefix="chasqui-tls-")
    try:
        _ca(d, "ca")
        _ca(d, "other-ca")
        _leaf(
            d,
            "server",
            "ca",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
        )
        _leaf(
            d,
            "client",
            "ca",
            "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
        )
        yield Path(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _tls_server(certs: Path, auth_clients: str) -> RedisProcess:
    return RedisProcess(
        tls=True,
        extra_args=[
            "--tls-cert-file", str(certs / "server.crt"),
            "--tls-key-file", str(certs / "server.key"),
            "--tls-ca-cert-file", str(certs / "ca.crt"),
            "--tls-auth-clients", auth_clients,
            "--requirepass", SECRET,
        ],
    ).start()  # fmt: skip


@pytest.fixture(scope="module")
def tls_server(certs: Path) -> Iterator[RedisProcess]:
    server = _tls_server(certs, "no")
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def mtls_server(certs: Path) -> Iterator[RedisProcess]:
    server = _tls_server(certs, "yes")
    try:
        yield server
    finally:
        server.cleanup()


def tls_url(
    server: RedisProcess, certs: Path, ca: str = "ca", client: bool = False
) -> str:
    url = f"rediss://:{ENC}@{server.host}:{server.port}/0?tls_ca_file={certs / f'{ca}.crt'}"
    if client:
        url += (
            f"&tls_cert_file={certs / 'client.crt'}&tls_key_file={certs / 'client.key'}"
        )
    return url


def tls_admin(server: RedisProcess, certs: Path) -> aioredis.Redis:
    return aioredis.from_url(
        f"rediss://:{ENC}@{server.host}:{server.port}/0",
        ssl_ca_certs=str(certs / "ca.crt"),
        ssl_certfile=str(certs / "client.crt"),
        ssl_keyfile=str(certs / "client.key"),
    )


@needs_openssl
async def test_tls_lifecycle_with_a_ca_file(
    tls_server: RedisProcess, certs: Path, queue_name: str
) -> None:
    admin = tls_admin(tls_server, certs)
    try:
        await run_lifecycle(tls_url(tls_server, certs), queue_name, admin)
    finally:
        await admin.aclose()


@needs_openssl
async def test_tls_lifecycle_with_a_client_certificate(
    mtls_server: RedisProcess, certs: Path, queue_name: str
) -> None:
    admin = tls_admin(mtls_server, certs)
    try:
        await run_lifecycle(tls_url(mtls_server, certs, client=True), queue_name, admin)
    finally:
        await admin.aclose()


async def _connection_error_in_bound(url: str) -> None:
    for exc in await fail_everywhere(url, RedisConnectionError):
        assert exc.code == "connection"
        assert isinstance(exc, ConnectionError)


@needs_openssl
async def test_tls_server_signed_by_another_ca_is_a_connection_error(
    tls_server: RedisProcess, certs: Path
) -> None:
    await _connection_error_in_bound(tls_url(tls_server, certs, ca="other-ca"))


@needs_openssl
async def test_tls_client_certificate_required_but_missing(
    mtls_server: RedisProcess, certs: Path
) -> None:
    await _connection_error_in_bound(tls_url(mtls_server, certs))


@needs_openssl
async def test_plain_redis_url_to_a_tls_port_is_a_connection_error(
    tls_server: RedisProcess,
) -> None:
    await _connection_error_in_bound(
        f"redis://:{ENC}@{tls_server.host}:{tls_server.port}/0"
    )


@needs_openssl
@pytest.mark.parametrize(
    ("query", "mention"),
    [
        ("tls_ca_file=/nonexistent/ca.pem", "tls_ca_file"),
        ("tls_ca_file={d}/server.key", "tls_ca_file"),  # no certificate in it
        ("tls_ca_file={d}/ca.crt&tls_cert_file={d}/client.crt", "tls_key_file"),
        ("tls_ca_file={d}/ca.crt&tls_key_file={d}/client.key", "tls_cert_file"),
        (
            "tls_ca_file={d}/ca.crt&tls_cert_file={d}/client.crt&tls_key_file={d}/ca.crt",
            "tls_key_file",
        ),
        (
            "tls_ca_file={d}/ca.crt&tls_cert_file={d}/client.crt&tls_key_file={d}/server.key",
            "tls_key_file",
        ),
    ],
    ids=[
        "missing-file",
        "not-a-certificate",
        "cert-without-key",
        "key-without-cert",
        "not-a-key",
        "key-of-another-cert",
    ],
)
async def test_tls_file_problems_are_invalid_argument(
    tls_server: RedisProcess, certs: Path, query: str, mention: str
) -> None:
    url = f"rediss://:{ENC}@{tls_server.host}:{tls_server.port}/0?" + query.format(
        d=certs
    )
    with pytest.raises(InvalidArgumentError) as info:
        await asyncio.wait_for(Queue("q", redis_url=url).add("x", 1), 15)
    assert mention in str(info.value)
    no_secret(info.value)
    with pytest.raises(InvalidArgumentError):
        Worker("q", _h, redis_url=url)


# ---------------------------------------------------------------------------
# Input limits shared by every binding
# ---------------------------------------------------------------------------

QUEUE_NAMES = json.loads(
    (ROOT / "spec" / "vectors" / "queue_names.json").read_text(encoding="utf-8")
)


def _names(kind: str) -> list[tuple[str, str]]:
    return [(c["name"] * c.get("repeat", 1), c["why"]) for c in QUEUE_NAMES[kind]]


@pytest.mark.parametrize(
    ("name", "why"), _names("invalid"), ids=[w for _, w in _names("invalid")]
)
def test_invalid_queue_names_from_the_shared_table(name: str, why: str) -> None:
    with pytest.raises(InvalidArgumentError, match="name"):
        Queue(name)
    with pytest.raises(InvalidArgumentError, match="queue_name"):
        Worker(name, _h)
    # The engine agrees on its own (the native Producer skips Python's checks).
    from chasquimq._native import Producer

    with pytest.raises(InvalidArgumentError, match="queue_name"):
        Producer("redis://127.0.0.1:1", name)


async def test_valid_queue_names_from_the_shared_table(
    redis_url: str, r: aioredis.Redis
) -> None:
    """Accepted by Queue and Worker alike; each name's job lands under its
    own hash tag, byte for byte."""
    for name, why in _names("valid"):
        Worker(name, _h, redis_url=redis_url)
        async with Queue(name, redis_url=redis_url) as q:
            await q.add("x", 1)
        stream = f"{{chasqui:{name}}}:stream".encode()
        assert await r.xlen(stream) == 1, why
        await r.delete(stream)


async def test_long_job_names_are_rejected_by_the_producer(
    redis_url: str, queue_name: str
) -> None:
    async with Queue(queue_name, redis_url=redis_url) as q:
        await q.add("n" * 256, 1)
        await q.add("\u00e9" * 128, 1)
        for bad in ("n" * 257, "\u00e9" * 128 + "n"):
            with pytest.raises(InvalidArgumentError, match="256"):
                await q.add(bad, 1)
            with pytest.raises(InvalidArgumentError, match="256"):
                await q.add_bulk([{"name": bad, "data": 1}])


async def test_worker_routes_too_long_names_and_oversize_payloads_to_the_dlq(
    redis_url: str, queue_name: str, r: aioredis.Redis
) -> None:
    """A writer that bypasses the producer's checks (another client, an old
    version) cannot get a 257-byte name or an oversize payload to a handler:
    the worker sends them to the DLQ (`malformed`, `oversize_payload`) and
    runs the entries exactly at the limits."""
    limit = 64
    stream = key(queue_name, "stream")
    at_limit = msgpack.packb(b"x" * (limit - 2), use_bin_type=True)
    assert len(at_limit) == limit
    over = msgpack.packb(b"x" * (limit - 1), use_bin_type=True)
    assert len(over) == limit + 1
    entries = {
        "name-256": {"d": envelope("name-256", 1, now_ms()), "n": "n" * 256},
        "name-257": {"d": envelope("name-257", 1, now_ms()), "n": "n" * 257},
        "name-258-utf8": {
            "d": envelope("name-258-utf8", 1, now_ms()),
            "n": "\u00e9" * 129,
        },
        "payload-at-limit": {
            "d": envelope("payload-at-limit", None, now_ms(), raw_payload=at_limit),
            "n": "p",
        },
        "payload-over": {
            "d": envelope("payload-over", None, now_ms(), raw_payload=over),
            "n": "p",
        },
    }
    for fields in entries.values():
        await r.xadd(stream, fields)
    ran: list[str] = []

    async def handler(job: Job) -> None:
        ran.append(job.id)

    async with running(
        fast_worker(queue_name, handler, redis_url, max_payload_bytes=limit)
    ):
        await wait_until(lambda: len(ran) == 2, what="the jobs at the limits")
        await wait_until(lambda: _dlq_len(r, queue_name, 3), what="three DLQ entries")
    assert sorted(ran) == ["name-256", "payload-at-limit"]
    routed = {
        msgpack.unpackb(f[b"d"], raw=False)[0]: f
        for _, f in await dlq_entries(r, queue_name)
    }
    assert routed["name-257"][b"reason"] == b"malformed"
    assert b"256" in routed["name-257"][b"detail"]
    assert routed["name-258-utf8"][b"reason"] == b"malformed"
    assert routed["payload-over"][b"reason"] == b"oversize_payload"
    assert str(limit).encode() in routed["payload-over"][b"detail"]


async def _dlq_len(r: aioredis.Redis, queue: str, n: int) -> bool:
    return bool(await r.xlen(key(queue, "dlq")) == n)
