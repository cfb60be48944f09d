"""Replay / backfill: re-evaluate retained input events with new or changed contracts (``floe replay``)."""

from floe_stream.replay.runner import ReplaySummary, parse_position, replay

__all__ = ["ReplaySummary", "parse_position", "replay"]
