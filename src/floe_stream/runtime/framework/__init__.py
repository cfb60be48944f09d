"""The framework every deployable runs on: Kafka edges, the consumer-group member, exactly-once transactions,
the sink base and runner, health, supervision, PostgreSQL and its migrations. Imports no deployable, no dev tool."""
