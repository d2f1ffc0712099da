"""Behaviour of `QueueEvents` (signatures and validation are generated)."""

from __future__ import annotations

from typing import Any

from chasquimq._generated.errors import NotSupportedError


class QueueEventsBase:
    __slots__ = ()

    def _init(self, queue_name: str, **kw: Any) -> None:
        raise NotSupportedError("QueueEvents is not available in this build yet")

    async def _close(self) -> None:
        return None
