"""Dev tools, never deployed: ``floe dev`` and its scripted demo, the embedded brokers and PostgreSQL of the dev
loop, tests and benchmarks, and ``floe tools install-kafka``."""
