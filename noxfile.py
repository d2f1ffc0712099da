"""Every task of the project is a nox session; CI calls sessions and nothing else.

`nox` runs the default set: every test. `nox -s demo` runs the main job.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PY = ROOT / "bindings" / "python"
nox.options.sessions = ["codegen-check", "lint", "test-rust", "test-python"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PY_TEST_DEPS = [
    "maturin>=1.7,<2",
    "msgpack>=1.0",
    "redis>=5.0",
    "pytest>=8",
    "pytest-asyncio>=0.24",
    "hypothesis>=6",
]
CODEGEN_DEPS = ["jinja2>=3.1", "pyyaml>=6", "jsonschema>=4", "ruff>=0.6", "pytest>=8"]


def _build_python(session: nox.Session, *, release: bool = False) -> None:
    """Builds the extension into the session's virtualenv (editable)."""
    args = ["maturin", "develop", "--quiet"]
    if release:
        args.append("--release")
    with session.chdir(PY):
        session.run(*args, external=False)


def _need_redis(session: nox.Session) -> None:
    if shutil.which("redis-server") is None:
        session.error(
            "redis-server is not on PATH: install it (apt-get install redis-server) or run .ci/run"
        )


@nox.session(name="dev", venv_backend="none")
def dev(session: nox.Session) -> None:
    """Create .venv with the package (editable, debug build) and every dev tool."""
    venv = ROOT / ".venv"
    if not venv.exists():
        session.run(sys.executable, "-m", "venv", str(venv))
    pip = str(venv / "bin" / "pip")
    session.run(
        pip, "install", "--quiet", *PY_TEST_DEPS, *CODEGEN_DEPS, "mypy>=1.10", "nox"
    )
    with session.chdir(PY):
        session.run(
            str(venv / "bin" / "maturin"),
            "develop",
            "--quiet",
            env={"VIRTUAL_ENV": str(venv)},
        )
    session.log("ready: source .venv/bin/activate")


@nox.session(name="codegen")
def codegen(session: nox.Session) -> None:
    """Regenerate the public surface from spec/api.yaml (in place)."""
    session.install(*CODEGEN_DEPS)
    session.run("python", "-m", "codegen")


@nox.session(name="codegen-check")
def codegen_check(session: nox.Session) -> None:
    """Fail when regenerating from the spec would change any generated file; run the generator's own tests."""
    session.install(*CODEGEN_DEPS)
    session.run("python", "-m", "codegen", "--check")
    session.run("python", "-m", "pytest", "-q", "codegen/tests")


@nox.session(name="lint")
def lint(session: nox.Session) -> None:
    """rustfmt, clippy -D warnings, ruff (check + format), mypy and stubtest against the built module."""
    session.run("cargo", "fmt", "--all", "--check", external=True)
    session.run(
        "cargo",
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
        external=True,
    )
    session.install("ruff>=0.6", "mypy>=1.10", *PY_TEST_DEPS)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    _build_python(session)
    session.run(
        "mypy", "--strict", "-p", "chasquimq", env={"MYPYPATH": str(PY / "python")}
    )
    session.run(
        "python",
        "-m",
        "mypy.stubtest",
        "chasquimq",
        "chasquimq._native",
        "--allowlist",
        str(PY / "stubtest-allowlist.txt"),
    )


@nox.session(name="test-rust")
def test_rust(session: nox.Session) -> None:
    """cargo test for the workspace; integration tests start their own redis-server."""
    _need_redis(session)
    session.run("cargo", "test", "--workspace", "--quiet", external=True)


@nox.session(name="test-python")
def test_python(session: nox.Session) -> None:
    """Build the extension and run the Python suite against a redis-server it starts."""
    _need_redis(session)
    session.install(*PY_TEST_DEPS)
    _build_python(session)
    session.run("python", "-m", "pytest", "-q", str(PY / "tests"), *session.posargs)


@nox.session(name="demo")
def demo(session: nox.Session) -> None:
    """The main job: build (release), start a throwaway Redis if none is reachable, enqueue and process 100,000 jobs."""
    session.install("maturin>=1.7,<2", "msgpack>=1.0", "redis>=5.0")
    _build_python(session, release=True)
    env = {"PYTHONPATH": str(ROOT / "tools")}
    session.run("python", str(ROOT / "examples" / "demo.py"), *session.posargs, env=env)
