"""Key → partition, identical to the Java client and aiokafka's default partitioner (murmur2)."""

from __future__ import annotations

from aiokafka.partitioner import murmur2

_CACHE_MAX = 2_000_000
_cache: dict[int, dict[str, int]] = {}
"""partitions → key → partition. A dict per partition count (~50 B a key, sharing the caller's string) instead of
an lru_cache (~200 B a key): one processor keys 100,000 assets' events (bench/state.py, memory), and murmur2 in
Python is ~3 µs a key (bench/versus.py). Cleared when it outgrows ``_CACHE_MAX`` keys."""


def partition_for(key: str, partitions: int) -> int:
    try:
        return _cache[partitions][key]  # the common case: one lookup (bench/versus.py, per output record)
    except KeyError:
        pass
    by_key = _cache.setdefault(partitions, {})
    if len(by_key) >= _CACHE_MAX:
        by_key.clear()
    p = by_key[key] = int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions
    return p
