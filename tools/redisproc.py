"""Start and stop a throwaway `redis-server`: the one spawner of every suite.

The Python suites, the chaos suite, the conformance runner, the benchmarks
and the demo import `RedisProcess` (and `RedisClusterProcess`); the Rust and
Node suites run this file as a program (`engine/tests/common/mod.rs`,
`bindings/node/test/helpers.mjs`), so all of them start Redis the same way:

    python3 tools/redisproc.py [--tls] [--cluster N] [--port P] [-- redis-server args]

prints one JSON line on stdout, `{"host", "port", "ports", "url", "pid",
"pids", "dir", "dirs"}` (or `{"error": "..."}` and exit status 1), then keeps
the server up until its stdin reaches end of file: the caller closes the pipe
to stop it, and a caller that dies closes it too, so no server outlives its
test. CONTRIBUTING.md says why one program rather than one copy per language.

How a port is chosen: a random candidate from CANDIDATE_PORTS is handed to
redis-server itself, and only the server's own log decides the outcome. A
server that logs "Ready to accept connections" owns the port; one that exits
after "Address already in use" lost it to someone else, and the next
candidate is tried. No port is probed and released first (that leaves a
window in which another process takes it), and a PING answered by somebody
else's server on the same port is never taken for ours. `redis-server --port
0` is no way out: port 0 turns the TCP listener off, it does not ask the
kernel for a free one.

Never a server at 6379: every candidate is above it and every server gets
its own temporary `--dir`. `--save '' --appendonly no` unless the caller
passes `--appendonly`. CHASQUIMQ_REDIS_SERVER names the server binary (a
path, e.g. a Valkey build); the default is `redis-server` on PATH.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

# Candidates stay below Linux's default ephemeral range (32768-60999), so
# they rarely meet an outgoing connection's local port, and leave room for
# a cluster node's bus port (port + 10000) under 65536.
CANDIDATE_PORTS = range(15000, 30000)
# Each lost race costs one server start (~20 ms); losing this many in a row
# means something is wrong with the machine, not unlucky.
ATTEMPTS = 25
READY = b"Ready to accept connections"
IN_USE = b"Address already in use"
SERVER_ENV = "CHASQUIMQ_REDIS_SERVER"


def server_binary() -> str:
    """The redis-server to run: $CHASQUIMQ_REDIS_SERVER, else `redis-server` on PATH."""
    exe = os.environ.get(SERVER_ENV) or shutil.which("redis-server")
    if not exe:
        raise RuntimeError(
            "redis-server is not on PATH; install it (apt-get install redis-server) "
            f"or set {SERVER_ENV} to the server binary"
        )
    return exe


# Its own generator: a test that seeds the global `random` (hypothesis does)
# must not make two processes try the same sequence of ports.
_rng = random.SystemRandom()


def candidate_port() -> int:
    return _rng.choice(CANDIDATE_PORTS)


def free_port() -> int:
    """A port nothing listens on right now, for tests that need a dead
    address. Never for starting a server: RedisProcess picks its own."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ping(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


def listening(host: str, port: int, timeout: float = 0.5) -> bool:
    """True once something accepts TCP connections (a TLS port cannot PING)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class PortInUse(RuntimeError):
    """redis-server could not bind its port (or its cluster bus port)."""


class RedisProcess:
    """A redis-server child process (`--save '' --appendonly no` by default).

    `port=None` (the default) lets `start()` choose one, retrying on a bind
    failure; a given `port` is used as is and a bind failure is an error.
    After the first start the port is kept, so a `stop()` then `start()`
    restarts the same server (same port, same `dir`).

    With `tls=True` the server listens only on a TLS port (`self.port`);
    pass the certificate options (`--tls-cert-file` ...) in `extra_args`.
    With `cluster=True` it runs in cluster mode (its nodes file in `dir`);
    RedisClusterProcess joins such nodes into a cluster."""

    def __init__(
        self,
        extra_args: Sequence[str] = (),
        port: int | None = None,
        tls: bool = False,
        cluster: bool = False,
    ) -> None:
        self.port = port or 0
        self._fixed_port = port is not None
        self.host = "127.0.0.1"
        self.tls = tls
        self.cluster = cluster
        self.extra_args = list(extra_args)
        self.dir = tempfile.mkdtemp(prefix="chasqui-redis-")
        self.log_path = os.path.join(self.dir, "redis.log")
        self.proc: subprocess.Popen[bytes] | None = None
        self.attempts = 0  # server starts the last start() took

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://{self.host}:{self.port}"

    def _args(self, exe: str, port: int) -> list[str]:
        if self.tls:
            args = [exe, "--port", "0", "--tls-port", str(port)]
        else:
            args = [exe, "--port", str(port)]
        args += ["--bind", self.host, "--dir", self.dir]
        if self.cluster:
            args += [
                "--cluster-enabled", "yes",
                "--cluster-config-file", os.path.join(self.dir, "nodes.conf"),
                "--cluster-node-timeout", "5000",
            ]  # fmt: skip
        if "--appendonly" not in self.extra_args:
            args += ["--save", "", "--appendonly", "no"]
        return args + self.extra_args

    def _log(self) -> bytes:
        try:
            with open(self.log_path, "rb") as f:
                return f.read()
        except OSError:
            return b""

    def _log_tail(self, lines: int = 8) -> str:
        tail = self._log().decode("utf-8", "replace").splitlines()[-lines:]
        return "\n".join(tail)

    def start(self, timeout: float = 10.0) -> RedisProcess:
        exe = server_binary()
        self.attempts = 0
        tries = 1 if self._fixed_port else ATTEMPTS
        for _ in range(tries):
            port = self.port if self._fixed_port else candidate_port()
            self.attempts += 1
            try:
                self._start_on(exe, port, timeout)
            except PortInUse:
                continue
            self.port = port
            self._fixed_port = True  # a restart reuses it
            return self
        if self._fixed_port:
            why = f"could not bind port {self.port} (or its cluster bus port): another process holds it"
        else:
            why = f"lost the bind race {tries} times in a row"
        raise PortInUse(f"redis-server {why}; its log ends:\n{self._log_tail()}")

    def _start_on(self, exe: str, port: int, timeout: float) -> None:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self._args(exe, port), stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.proc.poll()
            text = self._log()
            if code is not None:
                self.proc = None
                if IN_USE in text:
                    raise PortInUse(port)
                raise RuntimeError(
                    f"redis-server exited with {code} at start:\n{self._log_tail()}\n"
                    f"(full log: {self.log_path})"
                )
            # The log line is written after every listener is bound, by this
            # process only; the PING then proves it accepts commands.
            if READY in text and (self.tls or ping(self.host, port)):
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(
            f"redis-server did not get ready on port {port} within {timeout} s:\n"
            f"{self._log_tail()}"
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


class RedisClusterProcess:
    """`masters` cluster-mode servers joined by `redis-cli --cluster create`
    (no replicas), started and waited for until every node says
    `cluster_state:ok`. `url` is a `redis-cluster://` URL with the first
    node as host and the others as `node=` seeds."""

    def __init__(self, masters: int = 3, extra_args: Sequence[str] = ()) -> None:
        self.nodes = [
            RedisProcess(extra_args=extra_args, cluster=True) for _ in range(masters)
        ]
        self.host = "127.0.0.1"

    @property
    def port(self) -> int:
        return self.nodes[0].port

    @property
    def url(self) -> str:
        first, *rest = self.nodes
        seeds = "&".join(f"node={n.host}:{n.port}" for n in rest)
        return f"redis-cluster://{first.host}:{first.port}" + (
            f"?{seeds}" if seeds else ""
        )

    def start(self, timeout: float = 30.0) -> RedisClusterProcess:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError(
                "redis-cli is not on PATH (it creates the cluster): "
                "apt-get install redis-tools"
            )
        try:
            for n in self.nodes:
                n.start()
            subprocess.run(
                [cli, "--cluster", "create", *(f"{n.host}:{n.port}" for n in self.nodes),
                 "--cluster-replicas", "0", "--cluster-yes"],
                check=True, capture_output=True, timeout=60,
            )  # fmt: skip
            deadline = time.monotonic() + timeout
            for n in self.nodes:
                while True:
                    info = subprocess.run(
                        [cli, "-p", str(n.port), "cluster", "info"],
                        capture_output=True, text=True, timeout=10,
                    ).stdout  # fmt: skip
                    if "cluster_state:ok" in info:
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"cluster not ok within {timeout} s: {info}")
                    time.sleep(0.05)
        except BaseException:
            self.cleanup()
            raise
        return self

    def cleanup(self) -> None:
        for n in self.nodes:
            n.cleanup()

    def __enter__(self) -> RedisClusterProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def _report(servers: list[RedisProcess], url: str) -> None:
    first = servers[0]
    print(
        json.dumps(
            {
                "host": first.host,
                "port": first.port,
                "ports": [s.port for s in servers],
                "url": url,
                "pid": first.proc.pid if first.proc else None,
                "pids": [s.proc.pid if s.proc else None for s in servers],
                "dir": first.dir,
                "dirs": [s.dir for s in servers],
            }
        ),
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Run a throwaway redis-server until stdin closes; "
        "prints its address as one JSON line."
    )
    ap.add_argument("--tls", action="store_true", help="listen on a TLS port only")
    ap.add_argument(
        "--cluster",
        type=int,
        metavar="N",
        help="N cluster masters instead of one server",
    )
    ap.add_argument("--port", type=int, help="this port, no retry (default: choose)")
    ap.add_argument("redis_args", nargs="*", help="after --: redis-server arguments")
    opts = ap.parse_args(argv)

    def bye(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, bye)

    target: RedisProcess | RedisClusterProcess
    if opts.cluster:
        target = RedisClusterProcess(opts.cluster, extra_args=opts.redis_args)
        servers = target.nodes
    else:
        target = RedisProcess(opts.redis_args, port=opts.port, tls=opts.tls)
        servers = [target]
    try:
        try:
            target.start()
        except Exception as e:  # reported to the caller, which cannot see a traceback
            print(json.dumps({"error": str(e)}), flush=True)
            return 1
        _report(servers, target.url)
        # Until the caller closes our stdin (or dies, which closes it).
        while sys.stdin.buffer.read(4096):
            pass
        return 0
    finally:
        target.cleanup()


if __name__ == "__main__":
    sys.exit(main())
