"""Every task of the project is a nox session; CI calls sessions and nothing else.

`nox` runs the default set: every test. `nox -s demo` runs the main job.
`nox -s bench` runs the benchmarks against the peers (not in the default set).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PY = ROOT / "bindings" / "python"
NODE = ROOT / "bindings" / "node"
nox.options.sessions = [
    "codegen-check",
    "lint",
    "test-rust",
    "test-python",
    "chaos",
    "build-node",
    "test-node",
    "conformance",
]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PY_TEST_DEPS = [
    "maturin>=1.7,<2",
    "msgpack>=1.0",
    "redis>=5.0",
    "pytest>=8",
    "pytest-asyncio>=0.24",
    "hypothesis>=6",
    "pyyaml>=6",
    # Handlers as users write them (tests/test_handlers.py).
    "httpx>=0.27",
    "aiohttp>=3.9",
    "anyio>=4",
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


def _need_node(session: nox.Session) -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        session.error(
            "node and npm (Node 20+) are not on PATH: install them (apt-get install nodejs npm) or run .ci/run"
        )


def _npm_ci(session: nox.Session) -> None:
    """npm ci in bindings/node, only when package-lock.json changed."""
    installed = NODE / "node_modules" / ".package-lock.json"
    lock = NODE / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        with session.chdir(NODE):
            session.run("npm", "ci", "--no-audit", "--no-fund", external=True)


def _build_node(session: nox.Session) -> None:
    """npm ci (only when package-lock.json changed), the native module, the TypeScript."""
    _need_node(session)
    _npm_ci(session)
    with session.chdir(NODE):
        session.run("npm", "run", "build", external=True)


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
    session.install("ruff>=0.6", "mypy>=1.10", "msgpack-types>=0.2", *PY_TEST_DEPS)
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


@nox.session(name="chaos")
def chaos(session: nox.Session) -> None:
    """Fault injection (docs/reliability.md): worker SIGKILLs, a Redis crash and restart, a poison job, slow handlers, hostile entries, SIGTERM, codec property tests.

    Counts every acknowledged enqueue, handler start and completion per job
    id and fails on any lost job or unexplained duplicate. Prints one line
    per fault at the end: `CHAOS <fault>: enqueued=... lost=... duplicated=...
    recovery_worst_s=...`. Set CHAOS_SUMMARY_JSON=path to also write them as
    JSON, CHAOS_SEED to change the kill schedule.
    """
    _need_redis(session)
    session.install(*PY_TEST_DEPS)
    _build_python(session)
    session.run(
        "python",
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        str(PY / "chaos"),
        *session.posargs,
    )


@nox.session(name="build-node", venv_backend="none")
def build_node(session: nox.Session) -> None:
    """Build the Node package in bindings/node: npm ci, the napi native module (native/), the TypeScript (dist/)."""
    _build_node(session)


@nox.session(name="test-node", venv_backend="none")
def test_node(session: nox.Session) -> None:
    """Build the Node package, run its node --test suite against a redis-server it starts, tsc over the typed usage files, and the install-from-tarball test."""
    _need_redis(session)
    _build_node(session)
    with session.chdir(NODE):
        session.run("npm", "test", external=True)
        session.run("npm", "run", "typecheck", external=True)
        session.run("npm", "run", "test:package", external=True)


@nox.session(name="conformance")
def conformance(session: nox.Session) -> None:
    """Conformance vectors (conformance/README.md): lint them, run each in Python and in Node, check Python/Node parity and the cross pairs (one language produces, the other consumes).

    Builds the Python extension (as test-python) and the Node package (as
    build-node); the runner starts its own redis-server and one driver
    process per language. Extra arguments go to pytest, e.g.
    `nox -s conformance -- -k dlq`.
    """
    _need_redis(session)
    _need_node(session)
    session.install(*PY_TEST_DEPS, *CODEGEN_DEPS)
    _build_python(session)
    _build_node(session)
    session.run("python", str(ROOT / "conformance" / "lint.py"))
    session.run("python", "-m", "pytest", str(ROOT / "conformance"), *session.posargs)


@nox.session(name="demo")
def demo(session: nox.Session) -> None:
    """The main job: build (release), start a throwaway Redis if none is reachable, enqueue and process 100,000 jobs."""
    session.install("maturin>=1.7,<2", "msgpack>=1.0", "redis>=5.0")
    _build_python(session, release=True)
    env = {"PYTHONPATH": str(ROOT / "tools")}
    session.run("python", str(ROOT / "examples" / "demo.py"), *session.posargs, env=env)


def _bench_peer_venvs(session: nox.Session) -> Path:
    """One virtualenv per Python peer (their redis-py pins conflict), reused while its pins match."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from libs import LIBS
    finally:
        sys.path.pop(0)
    base = Path(session.virtualenv.location).parent / "bench-peers"
    for lib in LIBS:
        if lib.kind != "py-peer":
            continue
        venv = base / lib.name
        stamp = venv / ".bench-pins"
        want = "\n".join(lib.pins)
        if stamp.exists() and stamp.read_text() == want:
            continue
        shutil.rmtree(venv, ignore_errors=True)
        session.run("python", "-m", "venv", str(venv))
        session.run(
            str(venv / "bin" / "pip"),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *lib.pins,
            external=True,
        )
        stamp.write_text(want)
    return base


def _bench_node(session: nox.Session) -> None:
    """`npm ci` in bench/node (BullMQ, pinned by package-lock.json) unless it is up to date."""
    node_dir = ROOT / "bench" / "node"
    if shutil.which("npm") is None:
        session.warn("npm is not on PATH: the Node rows will say so")
        return
    lock = node_dir / "package-lock.json"
    installed = node_dir / "node_modules" / ".package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    with session.chdir(node_dir):
        session.run(
            "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error", external=True
        )


def _bench_node_binding(session: nox.Session, *, build: bool) -> Path | None:
    """chasquimq's Node binding for the harness's Node slot: a copy of
    bindings/node beside the session's virtualenv with a release build of
    the native module (bindings/node's own build is a debug one, and
    rebuilding it in place would swap it under its tests). None while
    bindings/node is absent or does not build: those rows say so."""
    pkg = ROOT / "bindings" / "node"
    dest = Path(session.virtualenv.location).resolve().parent / "bench-chasquimq-node"
    if not build:
        return dest if (dest / "native" / "index.js").exists() else None
    napi = pkg / "node_modules" / ".bin" / "napi"
    if shutil.which("node") is None or shutil.which("npm") is None:
        session.warn(
            "node and npm are not on PATH: the chasquimq (Node) rows say not available"
        )
        return None
    # A fresh clone has no node_modules and no dist/: build the package as
    # build-node does (its TypeScript needs the native module's typings);
    # the module the harness loads is the release build below.
    if not (pkg / "dist" / "index.js").exists() or not napi.exists():
        try:
            _build_node(session)
        except nox.command.CommandFailed:
            pass  # said just below
    if not (pkg / "dist" / "index.js").exists() or not napi.exists():
        session.warn(
            "bindings/node is not built (dist/, node_modules/): its rows say not available"
        )
        return None
    shutil.rmtree(dest, ignore_errors=True)
    (dest / "native").mkdir(parents=True)
    for name in ("package.json", "index.mjs"):
        shutil.copy2(pkg / name, dest / name)
    shutil.copytree(pkg / "dist", dest / "dist")
    (dest / "node_modules").symlink_to(pkg / "node_modules")
    try:
        with session.chdir(pkg):
            session.run(
                str(napi),
                "build",
                "--platform",
                "--release",
                "--output-dir",
                str(dest / "native"),
                "--js",
                "index.js",
                "--dts",
                "index.d.ts",
                external=True,
            )
    except nox.command.CommandFailed:
        session.warn(
            "bindings/node does not build in release mode: its rows say not available"
        )
        shutil.rmtree(dest, ignore_errors=True)
        return None
    return dest


@nox.session(name="bench")
def bench(session: nox.Session) -> None:
    """Benchmarks against the peers, side by side, on one throwaway Redis: markdown table + bench/results/<date>.json.

    chasquimq (release build), BullMQ, arq, saq, taskiq-redis and rq, each at
    the version pinned in bench/libs.py and bench/node/package-lock.json.
    Not in the default set. Examples:
        nox -s bench                                 # scale 1, median of 3
        nox -s bench -- --scale 0.1 --repeats 1      # a quick look
        nox -s bench -- --no-build --libs chasquimq,bullmq --scenarios worker-noop
    `--no-build` reuses the builds of chasquimq (the Python wheel and the Node
    binding's release copy) already beside the session's virtualenv;
    `nox -s bench -- --help` lists every option of bench/run.py.
    """
    _need_redis(session)
    args = list(session.posargs)
    no_build = "--no-build" in args
    if no_build:
        args.remove("--no-build")
    if "-h" in args or "--help" in args:
        session.run("python", str(ROOT / "bench" / "run.py"), "--help")
        return
    session.install("maturin>=1.7,<2", "msgpack>=1.0", "redis>=5.0")
    if not no_build:
        # A wheel, not `maturin develop`: an editable install loads the .so in
        # the source tree, which any other session's (debug) build replaces.
        wheels = Path(session.create_tmp()).resolve() / "wheels"
        shutil.rmtree(wheels, ignore_errors=True)
        with session.chdir(PY):
            session.run(
                "maturin", "build", "--release", "--quiet", "--out", str(wheels)
            )
        session.install(
            "--force-reinstall", "--no-deps", *map(str, wheels.glob("*.whl"))
        )
    peers = _bench_peer_venvs(session)
    _bench_node(session)
    node_binding = _bench_node_binding(session, build=not no_build)
    if node_binding is not None:
        args = ["--chasquimq-node", str(node_binding), *args]
    session.run(
        "python",
        str(ROOT / "bench" / "run.py"),
        "--peer-venvs",
        str(peers),
        *args,
        env={"PYTHONPATH": str(ROOT / "tools")},
    )
