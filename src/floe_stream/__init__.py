"""floe-stream: a real-time data-contract monitor (ODCS contracts over Kafka events)."""

__version__ = "0.1.0"
PRODUCER_URI = "https://github.com/floe-stream/floe-stream"
