"""Probe plug-ins from the ``floe.probes`` entry-point group (built-ins are registered there too)."""

from __future__ import annotations

import inspect
import logging
from importlib.metadata import entry_points
from typing import Any

from floe_stream.probes.base import Probe

log = logging.getLogger(__name__)
GROUP = "floe.probes"


def load_probes(**kwargs: Any) -> dict[str, Probe]:
    """Instantiate every registered probe class. ``kwargs`` are passed to constructors that accept them
    (``credentials``: the :class:`~floe_stream.probes.credentials.ProbeCredentials` bound to their targets,
    for the PostgreSQL probe). A plug-in that fails to load is logged and skipped; targets of its type then
    fail with reason ``no probe``."""
    probes: dict[str, Probe] = {}
    for ep in entry_points(group=GROUP):
        try:
            cls = ep.load()
            params = inspect.signature(cls).parameters
            probe = cls(**{k: v for k, v in kwargs.items() if k in params})
        except Exception:
            log.exception("probe plug-in %s (%s) failed to load; skipped", ep.name, ep.value)
            continue
        probes[ep.name] = probe
    if not probes:  # not installed as a distribution (e.g. a source checkout on sys.path)
        from floe_stream.probes.builtin import HttpProbe, KafkaProbe, PostgresProbe, TcpProbe

        probes = {
            "http": HttpProbe(),
            "tcp": TcpProbe(),
            "kafka": KafkaProbe(),
            "postgres": PostgresProbe(kwargs.get("credentials")),
        }
    return probes
