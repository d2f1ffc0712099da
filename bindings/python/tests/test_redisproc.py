"""The shared Redis spawner (tools/redisproc.py), which every suite starts its
servers with: the Rust and Node suites through its command line, the Python
ones through RedisProcess. A port is the server's only when the server itself
says so; a lost bind race moves to another port; the program's server lives
exactly as long as its stdin stays open."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redisproc
from redisproc import PortInUse, RedisProcess, listening

SCRIPT = Path(redisproc.__file__).resolve()


def server_pid(port: int) -> int:
    """The process_id the server on `port` reports (INFO server)."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"INFO server\r\n")
        data = b""
        while b"process_id:" not in data or not data.endswith(b"\r\n"):
            data += s.recv(65536)
    line = next(x for x in data.split(b"\r\n") if x.startswith(b"process_id:"))
    return int(line.split(b":")[1])


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port another process (a plain listening socket) holds."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def candidates_starting_with(monkeypatch: pytest.MonkeyPatch, first: int) -> list[int]:
    """Makes the spawner's first candidate `first`; returns every candidate tried."""
    tried: list[int] = []
    real = redisproc.candidate_port

    def pick() -> int:
        port = first if not tried else real()
        tried.append(port)
        return port

    monkeypatch.setattr(redisproc, "candidate_port", pick)
    return tried


def test_a_lost_bind_race_moves_to_another_port(
    monkeypatch: pytest.MonkeyPatch, held_port: int
) -> None:
    tried = candidates_starting_with(monkeypatch, held_port)
    with RedisProcess() as server:
        assert tried[0] == held_port
        assert server.port == tried[-1] != held_port
        assert server.attempts == len(tried) >= 2
        assert server.proc is not None
        assert server_pid(server.port) == server.proc.pid


def test_a_cluster_node_whose_bus_port_is_taken_moves_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as bus:
        bus.bind(("127.0.0.1", 0))
        bus.listen()
        port = bus.getsockname()[1] - 10000
        if port < 1024:
            pytest.skip("the kernel gave a bus port too low to pair")
        tried = candidates_starting_with(monkeypatch, port)
        with RedisProcess(cluster=True) as node:
            assert tried[0] == port
            assert node.port != port
            assert node.proc is not None
            assert server_pid(node.port) == node.proc.pid


def test_another_redis_on_the_port_is_never_taken_for_ours() -> None:
    """A PING answered by somebody else's server proves nothing: the server
    we started lost the port, so start() fails instead of handing out a
    server the caller does not own (and would flush, or stop)."""
    with RedisProcess() as theirs:
        ours = RedisProcess(port=theirs.port)
        try:
            with pytest.raises(PortInUse, match=f"port {theirs.port}"):
                ours.start()
            assert ours.proc is None
        finally:
            ours.cleanup()
        assert theirs.proc is not None
        assert server_pid(theirs.port) == theirs.proc.pid


def test_a_restart_keeps_the_port_and_the_data_dir() -> None:
    with RedisProcess() as server:
        port, data = server.port, server.dir
        server.stop()
        assert not listening(server.host, port)
        server.start()
        assert (server.port, server.dir, server.attempts) == (port, data, 1)
        assert server.proc is not None
        assert server_pid(port) == server.proc.pid


def test_the_program_runs_the_server_until_its_stdin_closes() -> None:
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--", "--maxmemory", "64mb"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    info = json.loads(proc.stdout.readline())
    try:
        assert info["url"] == f"redis://127.0.0.1:{info['port']}"
        assert info["ports"] == [info["port"]]
        assert server_pid(info["port"]) == info["pid"]
        assert os.path.isdir(info["dir"])
    finally:
        proc.stdin.close()  # what a caller that dies does too
        assert proc.wait(15) == 0
    assert not listening("127.0.0.1", info["port"])
    assert not os.path.exists(info["dir"])


def test_the_program_reports_a_failed_start_as_json(held_port: int) -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--port", str(held_port)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 1
    error = json.loads(out.stdout)["error"]
    assert f"could not bind port {held_port}" in error
    assert "Address already in use" in error  # the server's own log, quoted
