"""Deterministic ids: the same input always yields the same id, so replays are idempotent downstream."""

from __future__ import annotations

import hashlib


def stable_id(*parts: object) -> str:
    h = hashlib.blake2b("\x1f".join(str(p) for p in parts).encode(), digest_size=16)
    return h.hexdigest()
