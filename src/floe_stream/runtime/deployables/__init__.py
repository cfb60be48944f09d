"""The deployables (``floe run …``) and their composition root (app.py): the processor and its parts (outputs,
commit strategies, state changelog, contracts/probes side jobs, lineage view), the ticker, the Iceberg watcher.
Built on the framework; imports no dev tool."""
