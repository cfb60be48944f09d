"""Availability probes: pluggable pings (entry-point group ``floe.probes``) and the bounded runner.

Built-ins: ``postgres`` (``SELECT 1`` via asyncpg), ``http`` (expected status), ``tcp`` (connect),
``kafka`` (metadata request). A plug-in is a class with ``name`` and ``async def ping(target)``
registered under ``[project.entry-points."floe.probes"]``.
"""

from floe_stream.probes.base import Probe, ProbeError, ProbeTarget
from floe_stream.probes.registry import load_probes
from floe_stream.probes.runner import ProbeRunner
from floe_stream.probes.targets import target_for

__all__ = ["Probe", "ProbeError", "ProbeRunner", "ProbeTarget", "load_probes", "target_for"]
