"""backoff.Backoff, the one retry delay of every retry loop."""

from __future__ import annotations

import random

from floe_stream.backoff import Backoff


def test_doubles_up_to_the_cap_and_a_retry_after_wins_capped() -> None:
    b = Backoff(0.5, 3.0, max_retry_after_s=10.0)
    assert [b.next() for _ in range(4)] == [0.5, 1.0, 2.0, 3.0]
    assert b.next(retry_after=42.0) == 10.0 and b.next() == 3.0
    assert Backoff(9.0, 5.0).next() == 5.0  # never above the cap, the first delay included


def test_jitter_draws_from_the_upper_half() -> None:
    b = Backoff(4.0, 4.0, jitter=True, rng=random.Random(7))
    delays = [b.next() for _ in range(200)]
    assert all(2.0 <= d <= 4.0 for d in delays) and len(set(delays)) > 100
