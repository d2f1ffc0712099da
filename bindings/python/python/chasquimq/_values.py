"""Behaviour of the schedule and retry value types (fields and validation
are generated in `_generated/types.py`)."""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")


class RepeatPatternBase:
    __slots__ = ()

    @classmethod
    def _cron(cls: type[T], expression: str, *, tz: str | None = None) -> T:
        return cls(kind="cron", expression=expression, tz=tz)  # type: ignore[call-arg]

    @classmethod
    def _every(cls: type[T], interval_ms: int) -> T:
        return cls(kind="every", interval_ms=interval_ms)  # type: ignore[call-arg]

    def _to_dict(self) -> dict[str, Any]:
        s: Any = self
        if s.kind == "cron":
            return {"kind": "cron", "expression": s.expression, "tz": s.tz}
        return {"kind": "every", "interval_ms": s.interval_ms}


class BackoffSpecBase:
    __slots__ = ()

    @classmethod
    def _fixed(cls: type[T], delay_ms: int, jitter_ms: int | None = None) -> T:
        return cls(kind="fixed", delay_ms=delay_ms, jitter_ms=jitter_ms)  # type: ignore[call-arg]

    @classmethod
    def _exponential(
        cls: type[T],
        initial_ms: int,
        *,
        multiplier: float = 2.0,
        max_ms: int | None = None,
        jitter_ms: int | None = None,
    ) -> T:
        return cls(  # type: ignore[call-arg]
            kind="exponential",
            delay_ms=initial_ms,
            max_delay_ms=max_ms,
            multiplier=float(multiplier),
            jitter_ms=jitter_ms,
        )

    def _native(self) -> dict[str, Any]:
        s: Any = self
        return {
            "kind": s.kind,
            "delay_ms": s.delay_ms,
            "max_delay_ms": s.max_delay_ms,
            "multiplier": s.multiplier,
            "jitter_ms": s.jitter_ms,
        }


class MissedFiresPolicyBase:
    __slots__ = ()

    @classmethod
    def _skip(cls: type[T]) -> T:
        return cls(kind="skip")  # type: ignore[call-arg]

    @classmethod
    def _fire_once(cls: type[T]) -> T:
        return cls(kind="fire-once")  # type: ignore[call-arg]

    @classmethod
    def _fire_all(cls: type[T], max_catchup: int) -> T:
        return cls(kind="fire-all", max_catchup=max_catchup)  # type: ignore[call-arg]

    def _to_dict(self) -> dict[str, Any]:
        s: Any = self
        d: dict[str, Any] = {"kind": s.kind}
        if s.max_catchup is not None:
            d["max_catchup"] = s.max_catchup
        return d
