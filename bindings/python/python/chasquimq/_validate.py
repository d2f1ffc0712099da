"""Argument validation rules of the public API.

spec/api.yaml names a rule per parameter (`validate: positive_int`) and the
generated code calls the function of the same name here, with the field name
first: `_validate.positive_int("concurrency", concurrency)`. Rule names that
would shadow a builtin take a trailing underscore (`str_`, `bool_`, `int_`,
`callable_`). A rule returns None for an accepted value and raises
InvalidTypeError (a TypeError) for a wrong type or InvalidArgumentError (a
ValueError) for a wrong value, with a message naming the field and the fix.
Messages never echo a Redis URL's password.

Rules run on every call of Queue.add, so they do the cheap checks first and
allocate nothing on the accepted path. None is handled by the caller: the
generated code skips the rules of an optional parameter that is None.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from chasquimq import _redisurl
from chasquimq._generated.errors import InvalidArgumentError, InvalidTypeError

Rule = Callable[[str, Any], None]

MAX_NAME_BYTES = 256

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# The Unicode White_Space property, exactly as the engine's char::is_whitespace
# (str.isspace also counts U+001C-U+001F, which are control characters anyway).
_WHITESPACE = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_STREAM_ID = re.compile(r"\$|\d+(-\d+)?")
_MISSED_FIRES_KINDS = ("skip", "fire-once", "fire-all")


# --------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _wrong_type(field: str, expected: str, value: Any, fix: str) -> InvalidTypeError:
    return InvalidTypeError(
        f"{field} must be {expected} (got {type(value).__name__} {_show(value)}); {fix}"
    )


def _wrong_value(
    field: str, expected: str, value: Any, fix: str
) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"{field} must be {expected} (got {_show(value)}); {fix}"
    )


def mutually_exclusive_error(*fields: str) -> InvalidArgumentError:
    """The error for a call that gives more than one of `fields`."""
    names = " and ".join(fields)
    return InvalidArgumentError(
        f"{names} are mutually exclusive; pass only one of them"
    )


def requires_error(field: str, required: str) -> InvalidArgumentError:
    """The error for a call that gives `field` without `required`."""
    return InvalidArgumentError(
        f"{field} needs {required}; pass {required} too, or drop {field}"
    )


def optional(rule: Rule) -> Rule:
    """`rule`, accepting None as well."""

    def check(field: str, value: Any) -> None:
        if value is not None:
            rule(field, value)

    return check


# --------------------------------------------------------------------------
# Scalars
# --------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return type(value) is int or (
        isinstance(value, int) and not isinstance(value, bool)
    )


def str_(field: str, value: Any) -> None:
    if not isinstance(value, str):
        raise _wrong_type(field, "a str", value, "pass text")


def non_empty_str(field: str, value: Any) -> None:
    if not isinstance(value, str):
        raise _wrong_type(field, "a non-empty str", value, "pass text")
    if not value or value.isspace():
        raise _wrong_value(
            field, "a non-empty str", value, "pass text that is not only whitespace"
        )


def bool_(field: str, value: Any) -> None:
    if value is not True and value is not False:
        raise _wrong_type(field, "a bool", value, "pass True or False")


def int_(field: str, value: Any) -> None:
    if not _is_int(value):
        raise _wrong_type(field, "an int", value, "pass an int (bool is not accepted)")


def positive_int(field: str, value: Any) -> None:
    if not _is_int(value):
        raise _wrong_type(field, "a positive int", value, "pass an int >= 1")
    if value < 1:
        raise _wrong_value(field, "a positive int", value, "pass an int >= 1")


def non_negative_int(field: str, value: Any) -> None:
    if not _is_int(value):
        raise _wrong_type(field, "a non-negative int", value, "pass an int >= 0")
    if value < 0:
        raise _wrong_value(field, "a non-negative int", value, "pass an int >= 0")


def positive_number(field: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong_type(field, "a positive number", value, "pass an int or float > 0")
    if not value > 0 or not math.isfinite(value):
        raise _wrong_value(
            field, "a positive, finite number", value, "pass an int or float > 0"
        )


def callable_(field: str, value: Any) -> None:
    if not callable(value):
        raise _wrong_type(field, "callable", value, "pass a function")


def handler(field: str, value: Any) -> None:
    if not callable(value):
        raise _wrong_type(
            field,
            "an async function taking a Job",
            value,
            "pass e.g. `async def handle(job): ...`",
        )


# --------------------------------------------------------------------------
# Names and ids
# --------------------------------------------------------------------------


def _check_bytes(field: str, value: str, what: str) -> None:
    """At most MAX_NAME_BYTES of UTF-8; ASCII text (the usual case) skips encoding."""
    if value.isascii():
        size = len(value)
    else:
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise _wrong_value(
                field, f"{what} of valid Unicode text", value, "remove lone surrogates"
            ) from None
    if size > MAX_NAME_BYTES:
        raise InvalidArgumentError(
            f"{field} must be at most {MAX_NAME_BYTES} bytes of UTF-8 (got {size} "
            f"bytes: {_show(value)}); pass a shorter {what}"
        )


def queue_name(field: str, value: Any) -> None:
    if not isinstance(value, str):
        raise _wrong_type(field, "a str", value, "pass the queue name as text")
    if not value or value.isspace():
        raise _wrong_value(
            field, "a non-empty queue name", value, "pass a name such as 'emails'"
        )
    if "{" in value or "}" in value:
        raise _wrong_value(
            field,
            "a queue name without '{' or '}'",
            value,
            "remove the braces: the name sits inside the Redis Cluster hash tag "
            "{chasqui:<name>}",
        )
    # The rules of spec/vectors/queue_names.json, shared with the engine.
    if _CONTROL.search(value):
        raise _wrong_value(
            field, "a queue name without control characters", value, "remove them"
        )
    if value[0] in _WHITESPACE or value[-1] in _WHITESPACE:
        raise _wrong_value(
            field,
            "a queue name without leading or trailing whitespace",
            value,
            "trim the name",
        )
    _check_bytes(field, value, "name")


def job_name(field: str, value: Any) -> None:
    if not isinstance(value, str):
        raise _wrong_type(
            field, "a str", value, "pass the job name as text ('' for none)"
        )
    if len(value) > MAX_NAME_BYTES or not value.isascii():
        _check_bytes(field, value, "name")


def job_id(field: str, value: Any) -> None:
    if not isinstance(value, str):
        raise _wrong_type(field, "a str", value, "pass the job id as text")
    if not value or value.isspace():
        raise _wrong_value(
            field,
            "a non-empty job id",
            value,
            "pass a stable id such as 'order-42', not only whitespace",
        )
    if not value.isprintable() and _CONTROL.search(value):
        raise _wrong_value(
            field, "a job id without control characters", value, "remove them"
        )
    _check_bytes(field, value, "id")


def job_ids(field: str, value: Any) -> None:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise _wrong_type(
            field, "a sequence of job ids", value, "pass a list of str, e.g. [job.id]"
        )
    for i, item in enumerate(value):
        job_id(f"{field}[{i}]", item)


def stream_id(field: str, value: Any) -> None:
    if not isinstance(value, str):
        raise _wrong_type(
            field, "a str", value, 'pass "$", "0" or an id like "1700000000000-0"'
        )
    if not _STREAM_ID.fullmatch(value):
        raise _wrong_value(
            field,
            "a stream id",
            value,
            'pass "$" (new entries only), "0" (from the start) or "<ms>-<seq>"',
        )


# --------------------------------------------------------------------------
# Redis URL
# --------------------------------------------------------------------------


def _redact(url: str) -> str:
    """`url` without its user info and query, which may hold a password."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    rest = rest.partition("?")[0]
    return f"{scheme}{sep}{rest}"


def redis_url(field: str, value: Any) -> None:
    if not isinstance(value, str):
        raise _wrong_type(
            field, "a str", value, "pass a URL such as 'redis://127.0.0.1:6379'"
        )
    problem = _url_problem(value)
    if problem:
        raise InvalidArgumentError(
            f"{field} must be a redis://, rediss:// or redis-cluster:// URL with a host "
            f"(got {_redact(value)!r}: {problem}); "
            "pass e.g. 'redis://user:password@host:6379/0'"
        )


def _url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return "not a URL"
    if parts.scheme not in _redisurl.SCHEMES:
        return "the scheme must be redis, rediss, redis-cluster or rediss-cluster"
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if k.startswith("tls_") and k not in _redisurl.TLS_PARAMS:
            known = ", ".join(_redisurl.TLS_PARAMS)
            return f"unknown query parameter {k!r}; use {known}"
        if k in _redisurl.TLS_PARAMS and not _redisurl.is_tls(parts.scheme):
            return f"{k} needs a TLS URL (rediss:// or rediss-cluster://)"
        if k in _redisurl.TLS_PARAMS and not os.access(v, os.R_OK):
            return f"{k}: cannot read {v!r}"
    if parts.fragment:
        return "a '#' must be percent-encoded as %23"
    if not parts.hostname:
        return "no host"
    try:
        port = parts.port
    except ValueError:
        return "the port must be an int in 1..65535"
    if port is not None and not 1 <= port <= 65535:
        return "the port must be an int in 1..65535"
    db = parts.path.removeprefix("/")
    if db and not (db.isascii() and db.isdigit()):
        return "the path must be /<database number>"
    return None


# --------------------------------------------------------------------------
# Delays
# --------------------------------------------------------------------------


def delay_ms(field: str, value: Any) -> None:
    if type(value) is int and value >= 0:
        return
    if isinstance(value, int | float) and not isinstance(value, bool):
        # The chained comparison is False for NaN as well.
        if not 0 <= value < math.inf:
            raise _wrong_value(
                field,
                "a non-negative, finite number of milliseconds",
                value,
                "pass e.g. 5000, or a datetime for an absolute time",
            )
        return
    if isinstance(value, _dt.datetime):
        return
    raise _wrong_type(
        field,
        "an int or float of milliseconds, or a datetime",
        value,
        "pass e.g. delay_ms=5000, or delay=timedelta(seconds=5)",
    )


def timedelta(field: str, value: Any) -> None:
    if not isinstance(value, _dt.timedelta):
        raise _wrong_type(
            field, "a datetime.timedelta", value, "pass e.g. timedelta(seconds=5)"
        )
    if value < _dt.timedelta(0):
        raise _wrong_value(
            field, "a non-negative timedelta", value, "pass e.g. timedelta(seconds=5)"
        )


# --------------------------------------------------------------------------
# Value types (imported on first use: chasquimq._generated.types imports the
# hand-written bases, which may import this module)
# --------------------------------------------------------------------------

_types: Any = None


def _value_types() -> Any:
    global _types
    if _types is None:
        from chasquimq._generated import types

        _types = types
    return _types


def backoff_like(field: str, value: Any) -> None:
    if _is_int(value):
        if value < 0:
            raise _wrong_value(
                field,
                "a non-negative delay in milliseconds",
                value,
                "pass an int >= 0 or a BackoffSpec",
            )
        return
    if isinstance(value, dict | _value_types().BackoffSpec):
        return
    raise _wrong_type(
        field,
        "an int of milliseconds, a BackoffSpec or a dict",
        value,
        "pass e.g. BackoffSpec.exponential(1000)",
    )


def repeat_like(field: str, value: Any) -> None:
    if not isinstance(value, dict | _value_types().RepeatPattern):
        raise _wrong_type(
            field,
            "a RepeatPattern or a dict",
            value,
            "pass e.g. RepeatPattern.every(60_000) or RepeatPattern.cron('0 * * * *')",
        )


def repeat_pattern(field: str, value: Any) -> None:
    if not isinstance(value, _value_types().RepeatPattern):
        raise _wrong_type(
            field,
            "a RepeatPattern",
            value,
            "pass e.g. RepeatPattern.every(60_000) or RepeatPattern.cron('0 * * * *')",
        )


def missed_fires_like(field: str, value: Any) -> None:
    if isinstance(value, _value_types().MissedFiresPolicy):
        return
    if not isinstance(value, dict):
        raise _wrong_type(
            field,
            "a MissedFiresPolicy or a dict",
            value,
            "pass e.g. MissedFiresPolicy.fire_once()",
        )
    kind = value.get("kind")
    if kind not in _MISSED_FIRES_KINDS:
        raise _wrong_value(
            f"{field}['kind']",
            "one of " + ", ".join(repr(k) for k in _MISSED_FIRES_KINDS),
            kind,
            "or pass a MissedFiresPolicy",
        )
    if kind == "fire-all":
        positive_int(f"{field}['max_catchup']", value.get("max_catchup"))


# --------------------------------------------------------------------------
# Queue.add_bulk entries: the same rules as the parameters of Queue.add
# --------------------------------------------------------------------------

BULK_JOB_RULES: dict[str, Rule | None] = {
    "name": job_name,
    "data": None,
    "delay_ms": optional(delay_ms),
    "delay": optional(timedelta),
    "attempts": optional(positive_int),
    "backoff": optional(backoff_like),
    "job_id": optional(job_id),
    "timeout_ms": optional(positive_int),
    "repeat": optional(repeat_like),
}
BULK_JOB_REQUIRED = ("name", "data")


_UNKNOWN: Any = object()


def bulk_jobs(field: str, value: Any) -> None:
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
        raise _wrong_type(
            field,
            "a sequence of dicts",
            value,
            'pass e.g. [{"name": "send", "data": {...}}]',
        )
    rules = BULK_JOB_RULES
    for i, entry in enumerate(value):
        if type(entry) is dict and len(entry) == 2 and "data" in entry:
            # The common entry, {"name": ..., "data": ...}: an ASCII name of at
            # most 256 characters is valid as it is.
            name = entry.get("name", _UNKNOWN)
            if type(name) is str and len(name) <= MAX_NAME_BYTES and name.isascii():
                continue
        if not isinstance(entry, dict):
            allowed = ", ".join(BULK_JOB_RULES)
            raise _wrong_type(
                f"{field}[{i}]",
                "a dict",
                entry,
                f"pass a dict with keys among {allowed}",
            )
        for key in BULK_JOB_REQUIRED:
            if key not in entry:
                raise InvalidTypeError(
                    f"{field}[{i}] has no {key!r} key; each entry needs 'name' and 'data'"
                )
        for key, item in entry.items():
            rule = rules.get(key, _UNKNOWN)
            if rule is None:
                continue
            if rule is _UNKNOWN:
                allowed = ", ".join(BULK_JOB_RULES)
                raise InvalidTypeError(
                    f"{field}[{i}].{key} is not a known key; use only {allowed}"
                )
            rule(f"{field}[{i}].{key}", item)
        if entry.get("delay_ms") is not None and entry.get("delay") is not None:
            where = f"{field}[{i}]"
            raise mutually_exclusive_error(f"{where}.delay_ms", f"{where}.delay")
