"""Behaviour of `Job` (fields are generated in `_generated/types.py`)."""

from __future__ import annotations

from typing import Any

from chasquimq._generated.errors import NotSupportedError


class JobBase:
    __slots__ = ()

    async def _wait_for_result(self, *, timeout: float, poll_interval: float) -> Any:
        queue = getattr(self, "_queue", None)
        if queue is None:
            raise RuntimeError(
                "wait_for_result needs a Job returned by Queue.add; "
                "a Job given to a handler has no queue to poll"
            )
        raise NotSupportedError("results are not available in this build yet")
