"""Loading the spec: referential checks the schema cannot express, the type
grammar, and the model the templates read."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from codegen import typeexpr
from codegen.render import contract
from codegen.spec import SpecError, camel, load

REPO = Path(__file__).resolve().parents[2]
MINIMAL = REPO / "codegen" / "tests" / "golden" / "minimal" / "spec.yaml"


def _load_with(tmp_path: Path, edit) -> None:
    raw = yaml.safe_load(MINIMAL.read_text(encoding="utf-8"))
    edit(raw)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    load(path, "spec.yaml")


def _method(raw: dict) -> dict:
    return raw["classes"][0]["methods"][0]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda r: _method(r)["raises"].append("nope"),
            "spec.yaml: classes[Thing].methods[ping].raises[2]: unknown error code",
        ),
        (
            lambda r: _method(r).update(checks=[{"requires": {"times": "other"}}]),
            "classes[Thing].methods[ping].checks[0]: unknown parameter 'other'",
        ),
        (
            lambda r: (
                _method(r).update(checks=[{"mutually_exclusive": ["times", "times2"]}])
                or _method(r)["params"].append(
                    {
                        "name": "times2",
                        "type": "int | None",
                        "default": None,
                        "doc": "d",
                    }
                )
            ),
            "parameter 'times' must be optional",
        ),
        (
            lambda r: _method(r)["params"].append(
                {"name": "late", "type": "int", "doc": "d"}
            ),
            "methods[ping].params[late]: a positional parameter without default",
        ),
        (
            lambda r: _method(r)["params"].insert(
                0, {"name": "k", "kind": "keyword", "type": "int", "doc": "d"}
            ),
            "params[times]: a positional parameter cannot follow a keyword-only one",
        ),
        (
            lambda r: _method(r)["params"][0].update(type="int", default=None),
            "default null needs a type that admits None",
        ),
        (
            lambda r: _method(r)["params"][0].update(
                type="int | None", engine_default=True, default=5
            ),
            "with engine_default, give the type without None",
        ),
        (
            lambda r: _method(r)["params"].append(dict(_method(r)["params"][0])),
            "duplicate parameter 'times'",
        ),
        (
            lambda r: _method(r).update(returns={"type": "dict[str]"}),
            "returns.type: dict takes 2 type argument(s)",
        ),
        (
            lambda r: r["errors"]["codes"].append(dict(r["errors"]["codes"][0])),
            "duplicate error code 'invalid_argument'",
        ),
        (
            lambda r: r["classes"][0].update(protocols=["async_iterator"]),
            "classes[Thing]: 'iterates' is a required property",
        ),
        (
            lambda r: _method(r)["params"][0].update(engine_default=True, default=None),
            "engine_default needs a non-null default",
        ),
        (
            lambda r: _method(r)["params"][0].update(
                engine_default="twice the rest", default=3
            ),
            "a computed engine_default (text) takes no `default`",
        ),
    ],
)
def test_cross_checks_name_the_path(tmp_path: Path, edit, expected: str) -> None:
    with pytest.raises(SpecError) as info:
        _load_with(tmp_path, edit)
    assert expected in str(info.value)


def test_unreadable_yaml(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("a: [", encoding="utf-8")
    with pytest.raises(SpecError, match=r"spec\.yaml: not valid YAML"):
        load(path, "spec.yaml")


@pytest.mark.parametrize(
    ("text", "python"),
    [
        ("int|None", "int | None"),
        ("Callable[[Job], Awaitable[Any]]", "Callable[[Job], Awaitable[Any]]"),
        ("list[tuple[int, str, bytes]] | None", "list[tuple[int, str, bytes]] | None"),
        ("tuple[Any, ...]", "tuple[Any, ...]"),
        ("dict[str, Any]", "dict[str, Any]"),
    ],
)
def test_type_grammar(text: str, python: str) -> None:
    assert typeexpr.to_python(typeexpr.parse(text, {"Job"})) == python


@pytest.mark.parametrize(
    "text", ["int |", "list[int", "Widget", "int]", "list[int, str]", "str[int]", "a-b"]
)
def test_type_grammar_rejects(text: str) -> None:
    with pytest.raises(typeexpr.TypeSyntaxError):
        typeexpr.parse(text)


def test_camel() -> None:
    assert camel("read_block_ms") == "readBlockMs"
    assert camel("add") == "add"
    assert camel("_queue") == "_queue"


def test_real_spec_model() -> None:
    spec = load(REPO / "spec" / "api.yaml", "spec/api.yaml")
    worker = next(c for c in spec.classes if c.name == "Worker")
    params = {p.name: p for p in worker.init.params}
    assert (
        params["read_block_ms"].engine_default
        and params["read_block_ms"].default == 5000
    )
    assert params["read_block_ms"].py_type == "int | None"
    assert params["read_block_ms"].py_default == "None"
    # A default the engine computes: no value, the docs say how.
    rc = params["read_count"]
    assert rc.engine_default and not rc.has_default
    assert rc.py_default == "None" and rc.py_type == "int | None"
    assert rc.engine_default_text == "the concurrency, at most 1000"
    assert params["shutdown_timeout_ms"].py_default == "30000"
    assert params["queue_name"].node_name == "queueName"
    assert [c.name for c in spec.native_classes] == [
        "Producer",
        "Completions",
        "Consumer",
        "Scheduler",
    ]
    assert spec.public_native == ["Producer", "Consumer", "Scheduler", "version"]
    text = contract(spec)
    assert (
        "async def _add(self, name: str, data: Any, *, delay_ms: DelayMsLike | None,"
        in text
    )
    assert "def _cron(cls, expression: str, *, tz: str | None) -> Self: ..." in text


@pytest.mark.parametrize(
    ("text", "ts"),
    [
        ("int | float | datetime", "number | Date"),
        ("Callable[[Job], Awaitable[Any]]", "(job: Job) => any"),
        ("list[tuple[str, int]] | None", "Array<[string, number]> | null"),
        ("dict[str, Any]", "Record<string, any>"),
        ("Sequence[str]", "ReadonlyArray<string>"),
        ("tuple[bytes, ...]", "Array<Buffer>"),
        ("timedelta | None", "number | null"),
        ("Awaitable[int]", "number | PromiseLike<number>"),
    ],
)
def test_type_grammar_in_typescript(text: str, ts: str) -> None:
    assert typeexpr.to_ts(typeexpr.parse(text, {"Job"})) == ts


def test_node_overrides_and_names() -> None:
    spec = load(REPO / "spec" / "api.yaml", "spec/api.yaml")
    job = next(d for d in spec.dataclasses if d.name == "Job")
    timeout = job.methods[0].params[0]
    assert (timeout.node_name, timeout.node_default) == ("timeoutMs", 30000)
    assert job.node_base == "job.JobBase"
    errors = {e.code: e for e in spec.errors}
    assert errors["invalid_argument"].node_base == "RangeError"
    assert errors["closed"].node_base is None


def test_node_name_given_twice(tmp_path: Path) -> None:
    def edit(r: dict) -> None:
        _method(r)["params"][0].update(node_name="a", node={"name": "b"})

    with pytest.raises(SpecError, match=r"give node_name or node\.name, not both"):
        _load_with(tmp_path, edit)


def test_node_text() -> None:
    from codegen.render_node import node_text

    assert node_text("None means `max_attempts`; a dict of str") == (
        "null means `maxAttempts`; an object of string"
    )
    assert node_text("see Queue.get_job_result") == "see Queue.getJobResult"
    assert node_text("redis://user:pass@h/0") == "redis://user:pass@h/0"
