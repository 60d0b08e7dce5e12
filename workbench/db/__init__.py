"""The database edge: schema, engine, migrations and bulk storage."""
