"""The one backoff: how long to wait before the next retry, for every retry loop (sinks' destinations, alert
deliveries, the client's publishes, the Iceberg catalog, a delivery claim held by another sink).

A leaf module: imports nothing of floe.
"""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Delays ``initial_s``, doubled after each retry, never above ``max_s``. With ``jitter`` each delay is drawn
    from its upper half (``[d/2, d]``), so that clients that failed together do not retry together. A receiver's
    ``Retry-After`` wins over the computed delay, capped by ``max_retry_after_s`` (the sequence still advances)."""

    def __init__(
        self,
        initial_s: float,
        max_s: float,
        *,
        jitter: bool = False,
        max_retry_after_s: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.max_s = max_s
        self.jitter = jitter
        self.max_retry_after_s = max_retry_after_s
        self.rng = rng or random.Random()
        self._base = initial_s

    def next(self, retry_after: float | None = None) -> float:
        """The delay before the next attempt (seconds)."""
        base = min(self._base, self.max_s)
        self._base = base * 2
        if retry_after is not None:
            return retry_after if self.max_retry_after_s is None else min(retry_after, self.max_retry_after_s)
        return base / 2 + self.rng.uniform(0, base / 2) if self.jitter else base
