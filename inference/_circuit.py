"""A small circuit breaker: fail fast while a backend keeps failing.

Closed: calls go out; ``failures`` consecutive failures open it. Open: calls
raise :class:`~pipeline.errors.CircuitOpen` at once for ``reset_s``. Then
half-open: one probe call goes out (others still fail fast); its success
closes the circuit, its failure opens it again for another ``reset_s``.
Single event loop, no locks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from pipeline.errors import CircuitOpen, ConfigError

__all__ = ["CircuitBreaker"]


class CircuitBreaker:
    """Closed -> open after ``failures`` consecutive failures -> half-open after ``reset_s``.

    Half-open lets one probe call through; its success closes the circuit, its
    failure opens it again. ``clock`` is injectable for tests.
    """

    def __init__(self, failures: int, reset_s: float, clock: Callable[[], float] = time.monotonic):
        if failures < 1 or reset_s < 0:
            raise ConfigError("circuit_failures must be >= 1 and circuit_reset_s >= 0")
        self.failures, self.reset_s, self._clock = failures, reset_s, clock
        self._count, self._opened_at, self._probing = 0, 0.0, False

    @property
    def state(self) -> Literal["closed", "open", "half-open"]:
        if self._count < self.failures:
            return "closed"
        return "half-open" if self._clock() - self._opened_at >= self.reset_s else "open"

    def before_call(self) -> bool:
        """Raise CircuitOpen unless a call may go out; True when it is the half-open probe."""
        state = self.state
        if state == "closed":
            return False
        if state == "open" or self._probing:
            wait_s = max(self.reset_s - (self._clock() - self._opened_at), 0.0)
            raise CircuitOpen(
                f"circuit open after {self._count} consecutive backend failures; "
                f"next probe in {wait_s:.1f}s"
            )
        self._probing = True
        return True

    def record(self, *, ok: bool | None, probe: bool) -> None:
        """The outcome of a call let through; ``ok=None``: no outcome (cancelled)."""
        if probe:
            self._probing = False
        if ok is None:
            return
        if ok:
            self._count = 0
            return
        self._count += 1
        if self._count >= self.failures:
            self._opened_at = self._clock()
