"""Event sources that real platforms already have: they turn platform state into floe's input events.

* :mod:`floe_stream.sources.iceberg` — an Iceberg catalog watcher (`floe run source iceberg`);
* :mod:`floe_stream.sources.dbt` — dbt ``run_results.json`` → quality results for a materialization event.
"""
