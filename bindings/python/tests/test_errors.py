"""The error hierarchy: engine codes convert to the classes the spec names."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import chasquimq
from chasquimq import _native
from chasquimq._generated.errors import ERRORS_BY_CODE, ChasquiError

SPEC = Path(__file__).resolve().parents[3] / "spec" / "api.yaml"

# The builtin base of each class, as spec/api.yaml says (restated here so a
# change to the spec that drops a base fails this test too).
EXPECTED_BASES: dict[str, type[BaseException] | None] = {
    "invalid_argument": ValueError,
    "invalid_type": TypeError,
    "encode": TypeError,
    "decode": ValueError,
    "connection": ConnectionError,
    "auth": PermissionError,
    "timeout": TimeoutError,
    "outcome_unknown": ConnectionError,
    "redis": RuntimeError,
    "queue_full": RuntimeError,
    "closed": RuntimeError,
    "forked": RuntimeError,
    "not_supported": NotImplementedError,
    "unrecoverable": None,
    "internal": RuntimeError,
}


def _spec_codes() -> list[dict]:
    return yaml.safe_load(SPEC.read_text())["errors"]["codes"]


def test_engine_codes_are_all_mapped() -> None:
    codes = _native._engine_error_codes()
    assert len(codes) == len(set(codes)) and codes
    assert set(codes) <= set(ERRORS_BY_CODE)


@pytest.mark.parametrize("code", _native._engine_error_codes())
def test_raise_engine_error_raises_mapped_class(code: str) -> None:
    cls = ERRORS_BY_CODE[code]
    assert issubclass(cls, ChasquiError)
    with pytest.raises(cls) as info:
        _native._raise_engine_error(code)
    assert type(info.value) is cls
    assert info.value.code == code
    assert isinstance(info.value, ChasquiError)
    assert str(info.value)


def test_unknown_code_is_rejected() -> None:
    with pytest.raises(ValueError):
        _native._raise_engine_error("no_such_code")


def test_error_classes_match_spec() -> None:
    spec = _spec_codes()
    assert [c["code"] for c in spec] == list(ERRORS_BY_CODE)
    assert set(EXPECTED_BASES) == set(ERRORS_BY_CODE)
    for entry in spec:
        cls = ERRORS_BY_CODE[entry["code"]]
        assert cls.__name__ == entry["name"]
        assert cls.code == entry["code"]
        assert getattr(chasquimq, entry["name"]) is cls, (
            f"{entry['name']} is not exported"
        )
        assert issubclass(cls, ChasquiError)
        spec_bases = [
            getattr(__import__("builtins"), b)
            for b in entry.get("python", {}).get("bases", [])
        ]
        for b in spec_bases:
            assert issubclass(cls, b), (cls, b)
        expected = EXPECTED_BASES[entry["code"]]
        assert spec_bases == ([expected] if expected else [])
        if "parent" in entry:
            assert issubclass(cls, ERRORS_BY_CODE[entry["parent"]])
        if expected is None:
            # UnrecoverableError is a ChasquiError only (not a ValueError etc.).
            assert cls.__mro__[1:] == (ChasquiError, Exception, BaseException, object)


def test_root_error() -> None:
    assert issubclass(ChasquiError, Exception)
    assert ChasquiError.code == "error"
    assert chasquimq.ChasquiError is ChasquiError


def test_user_subclass_of_unrecoverable() -> None:
    class Mine(chasquimq.UnrecoverableError):
        pass

    assert issubclass(Mine, chasquimq.UnrecoverableError)
    assert Mine.code == "unrecoverable"
