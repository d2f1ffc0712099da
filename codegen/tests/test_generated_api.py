"""The checked-in generated classes against fake hand-written bases.

Every public method must validate, then call the base's `_<name>` with every
argument (positional ones by position, keyword ones by name), `__init__` must
call `_init`, properties must read `_<name>`, factories must call the base's
classmethod. The fake bases are built from the spec, so a method added to the
spec is covered without touching this file.
"""

from __future__ import annotations

import asyncio
import builtins
import importlib
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from codegen.spec import ApiClass, DataClass, Method, Spec, base_parts, load

REPO = Path(__file__).resolve().parents[2]

SPEC: Spec = load(REPO / "spec" / "api.yaml", "spec/api.yaml")
CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []


class _Result:
    """What a fake base method returns: used as is, or awaited (then itself)."""

    def __await__(self) -> Iterator[Any]:
        return self
        yield  # unreachable; makes __await__ a generator


def _recorder(name: str) -> Any:
    def record(self: Any, *args: Any, **kwargs: Any) -> Any:
        CALLS.append((name, args, kwargs))
        return _Result()

    return record


def _class_recorder(name: str) -> Any:
    def record(cls: Any, *args: Any, **kwargs: Any) -> Any:
        CALLS.append((name, args, kwargs))
        return "made"

    return classmethod(record)


def _fake_bases() -> dict[str, ModuleType]:
    modules: dict[str, ModuleType] = {}
    for cls in SPEC.classes:
        attrs: dict[str, Any] = {"_init": _recorder("_init")}
        for m in cls.methods:
            attrs[f"_{m.name}"] = _recorder(f"_{m.name}")
        for p in cls.properties:
            attrs[f"_{p.name}"] = f"value of {p.name}"
        _add(modules, cls.base, attrs)
    for dc in SPEC.dataclasses:
        if not dc.base:
            continue
        attrs = {"__slots__": ()}
        for m in dc.methods:
            attrs[f"_{m.name}"] = _recorder(f"_{m.name}")
        for f in dc.factories:
            attrs[f"_{f.name}"] = _class_recorder(f"_{f.name}")
        _add(modules, dc.base, attrs)
    return modules


def _add(modules: dict[str, ModuleType], base: str, attrs: dict[str, Any]) -> None:
    module_name, class_name = base_parts(base)
    module = modules.setdefault(module_name, ModuleType(module_name))
    setattr(module, class_name, type(class_name, (), attrs))


@pytest.fixture
def gen(chasquimq_pkg: ModuleType) -> Iterator[dict[str, Any]]:
    sys.modules.update(_fake_bases())
    api = importlib.import_module("chasquimq._generated.api")
    types = importlib.import_module("chasquimq._generated.types")
    CALLS.clear()
    yield {**vars(types), **vars(api)}


def _sample(rule: str | None, ns: dict[str, Any]) -> Any:
    return {
        None: object(),
        "str": "x",
        "non_empty_str": "x",
        "bool": True,
        "int": 3,
        "positive_int": 3,
        "non_negative_int": 0,
        "positive_number": 1.5,
        "queue_name": "q",
        "job_name": "n",
        "job_id": "id-1",
        "job_ids": ["a", "b"],
        "redis_url": "redis://h:1/0",
        "stream_id": "0",
        "delay_ms": 10,
        "timedelta": timedelta(seconds=1),
        "callable": len,
        "handler": len,
        "bulk_jobs": [{"name": "n", "data": 1}],
        "backoff_like": 100,
        "repeat_like": {"kind": "every"},
        "repeat_pattern": ns["RepeatPattern"](kind="every", interval_ms=5),
        "missed_fires_like": {"kind": "skip"},
    }[rule]


def _arguments(
    method: Method, ns: dict[str, Any]
) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
    """Valid arguments for `method`, and the values the base must receive."""
    skip = {c.params[1] for c in method.checks if c.kind == "mutually_exclusive"}
    positional: list[Any] = []
    keywords: dict[str, Any] = {}
    received: dict[str, Any] = {}
    for p in method.params:
        if p.name in skip:
            received[p.name] = None
            continue
        value = _sample(p.rules[0] if p.rules else None, ns)
        received[p.name] = value
        if p.keyword:
            keywords[p.name] = value
        else:
            positional.append(value)
    return positional, keywords, received


def _expect(
    method: Method, received: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    args = tuple(received[p.name] for p in method.positional)
    kwargs = {p.name: received[p.name] for p in method.keywords}
    return args, kwargs


def _run(result: Any) -> Any:
    if asyncio.iscoroutine(result):
        return asyncio.run(result)
    return result


CLASS_METHODS = [(c.name, m.name) for c in SPEC.classes for m in c.methods]


@pytest.mark.parametrize("cls_name", [c.name for c in SPEC.classes])
def test_init_and_properties_forward(gen: dict[str, Any], cls_name: str) -> None:
    spec_cls: ApiClass = next(c for c in SPEC.classes if c.name == cls_name)
    args, kwargs, received = _arguments(spec_cls.init, gen)
    obj = gen[cls_name](*args, **kwargs)
    assert CALLS == [("_init", *_expect(spec_cls.init, received))]
    for p in spec_cls.properties:
        assert getattr(obj, p.name) == f"value of {p.name}"


@pytest.mark.parametrize(("cls_name", "method_name"), CLASS_METHODS)
def test_methods_forward(gen: dict[str, Any], cls_name: str, method_name: str) -> None:
    spec_cls = next(c for c in SPEC.classes if c.name == cls_name)
    method = next(m for m in spec_cls.methods if m.name == method_name)
    init_args, init_kwargs, _ = _arguments(spec_cls.init, gen)
    obj = gen[cls_name](*init_args, **init_kwargs)
    CALLS.clear()
    args, kwargs, received = _arguments(method, gen)
    result = _run(getattr(obj, method_name)(*args, **kwargs))
    assert result is not None
    assert CALLS == [(f"_{method_name}", *_expect(method, received))]
    assert (
        asyncio.iscoroutinefunction(getattr(gen[cls_name], method_name))
        == method.is_async
    )


DATACLASS_CALLS = [
    (d.name, m.name, kind)
    for d in SPEC.dataclasses
    for kind, members in (("factory", d.factories), ("method", d.methods))
    for m in members
]


@pytest.mark.parametrize(("dc_name", "member", "kind"), DATACLASS_CALLS)
def test_dataclass_members_forward(
    gen: dict[str, Any], dc_name: str, member: str, kind: str
) -> None:
    dc: DataClass = next(d for d in SPEC.dataclasses if d.name == dc_name)
    method = next(
        m
        for m in (dc.factories if kind == "factory" else dc.methods)
        if m.name == member
    )
    args, kwargs, received = _arguments(method, gen)
    if kind == "factory":
        assert getattr(gen[dc_name], member)(*args, **kwargs) == "made"
    else:
        fields = {f.name: 0 for f in dc.fields if not f.has_default}
        obj = gen[dc_name](**fields)
        _run(getattr(obj, member)(*args, **kwargs))
    assert CALLS == [(f"_{member}", *_expect(method, received))]


def test_validation_happens_before_the_base(gen: dict[str, Any]) -> None:
    Queue, Worker = gen["Queue"], gen["Worker"]
    with pytest.raises(ValueError, match="name"):
        Queue("")
    with pytest.raises(TypeError, match="concurrency"):
        Worker("q", len, concurrency="10")
    with pytest.raises(ValueError, match="shutdown_timeout_ms"):
        Worker("q", len, shutdown_timeout_ms=0)
    assert CALLS == []
    queue = Queue("q")
    CALLS.clear()
    with pytest.raises(ValueError, match="delay_ms and delay are mutually exclusive"):
        asyncio.run(queue.add("n", 1, delay_ms=5, delay=timedelta(seconds=1)))
    with pytest.raises(ValueError, match="missed_fires needs repeat"):
        asyncio.run(queue.add("n", 1, missed_fires={"kind": "skip"}))
    with pytest.raises(TypeError, match=r"jobs\[1\]\.name"):
        asyncio.run(queue.add_bulk([{"name": "a", "data": 1}, {"name": 2, "data": 1}]))
    with pytest.raises(ValueError, match="max_catchup"):
        gen["MissedFiresPolicy"].fire_all(0)
    assert CALLS == []


def test_engine_defaults_are_none_in_python(gen: dict[str, Any]) -> None:
    gen["Worker"]("q", len)
    ((_, _, kwargs),) = CALLS
    assert kwargs["read_block_ms"] is None
    assert kwargs["concurrency"] == 100
    assert kwargs["shutdown_timeout_ms"] == 30000


def test_job_dataclass(gen: dict[str, Any]) -> None:
    Job = gen["Job"]
    job = Job("id", "name", {"a": 1}, 2, 123)
    assert not hasattr(job, "__dict__")
    assert job.attempts_made == 2
    other = Job("id", "name", {"a": 1}, 2, 123, _queue=object())
    assert job == other
    assert "_queue" not in repr(other)


def test_errors_module(chasquimq_pkg: ModuleType) -> None:
    errors = importlib.import_module("chasquimq._generated.errors")
    assert set(errors.ERRORS_BY_CODE) == {e.code for e in SPEC.errors}
    for e in SPEC.errors:
        cls = errors.ERRORS_BY_CODE[e.code]
        assert cls.__name__ == e.name and cls.code == e.code
        assert issubclass(cls, errors.ChasquiError)
        for base in e.bases:
            assert issubclass(cls, getattr(builtins, base))
    assert issubclass(errors.RedisConnectionError, ConnectionError)
    assert issubclass(errors.UnrecoverableError, errors.ChasquiError)
