"""Behaviour of `Job` (fields are generated in `_generated/types.py`)."""

from __future__ import annotations

from typing import Any

from chasquimq._generated.errors import ClosedError


class JobBase:
    __slots__ = ()

    async def _wait_for_result(self, *, timeout: float, poll_interval: float) -> Any:
        queue = getattr(self, "_queue", None)
        if queue is None:
            raise ClosedError(
                "wait_for_result needs a Job returned by Queue.add; "
                "a Job given to a handler has no queue to poll"
            )
        return await queue._wait_result(self.id, timeout, poll_interval)  # type: ignore[attr-defined]
