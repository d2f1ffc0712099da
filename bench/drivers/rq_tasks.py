"""The rq job function. rq refuses functions of `__main__`, so it lives in
a module of its own; drivers/rq_.py sets TRACKER in the worker process."""

from __future__ import annotations

from typing import Any

TRACKER: Any = None


def handler(data: dict[str, Any]) -> Any:
    TRACKER.begin(data)
    return TRACKER.end(data)
