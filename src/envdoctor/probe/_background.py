"""Run one probe in a daemon thread so a hung driver or tool cannot hang the caller."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class BackgroundCall(Generic[T]):
    """Start ``func()`` now; ``result(timeout)`` returns its value, or ``on_timeout()`` if it is still running."""

    def __init__(self, func: Callable[[], T], name: str) -> None:
        self._func = func
        self._value: list[T] = []
        self._thread = threading.Thread(target=self._run, name=f"envdoctor-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self._value.append(self._func())

    def result(self, timeout: float, on_timeout: Callable[[], T]) -> T:
        self._thread.join(timeout)
        if self._value:
            return self._value[0]
        return on_timeout()
