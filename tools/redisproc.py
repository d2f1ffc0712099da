"""Start and stop a throwaway `redis-server` on a free port.

Used by the test suites, the demo, the benchmarks and the conformance
runner: every test talks to a real Redis it started itself, never to a
server at 6379.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


class RedisProcess:
    """A redis-server child process (`--save '' --appendonly no` by default).

    With `tls=True` the server listens only on a TLS port (`self.port`); pass
    the certificate options (`--tls-cert-file` ...) in `extra_args`."""

    def __init__(
        self, extra_args: Sequence[str] = (), port: int | None = None, tls: bool = False
    ) -> None:
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.tls = tls
        self.extra_args = list(extra_args)
        self.dir = tempfile.mkdtemp(prefix="chasqui-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> RedisProcess:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError(
                "redis-server is not on PATH; install it (apt-get install redis-server)"
            )
        if self.tls:
            args = [exe, "--port", "0", "--tls-port", str(self.port)]
        else:
            args = [exe, "--port", str(self.port)]
        args += ["--bind", self.host, "--dir", self.dir]
        ready = listening if self.tls else ping
        if not any(a == "--appendonly" for a in self.extra_args):
            args += ["--save", "", "--appendonly", "no"]
        args += self.extra_args
        log = open(os.path.join(self.dir, "redis.log"), "wb")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self.proc.returncode}; see {self.dir}/redis.log"
                )
            if ready(self.host, self.port):
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(
            f"redis-server did not answer on port {self.port} within {timeout} s"
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
