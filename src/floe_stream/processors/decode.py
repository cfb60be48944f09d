"""Moved to :mod:`floe_stream.topics.decode` (codecs live with the wire models). Re-exported only for the
sinks, which still import it from here (issue 14 item 1 moves them onto the sink runtime)."""

from floe_stream.topics.decode import (
    DecodeError,
    decode_commit,
    decode_materialization,
    decode_probe,
    decode_tick,
)

__all__ = ["DecodeError", "decode_commit", "decode_materialization", "decode_probe", "decode_tick"]
