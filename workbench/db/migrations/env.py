"""Alembic environment: the engine comes from ``workbench.db.engine.alembic_config``."""

from alembic import context

from workbench.db.partitions import in_schema
from workbench.db.schema import Base

config = context.config
engine = config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # the schema names a partitioned table, not its partitions (PostgreSQL)
        include_name=in_schema,
    )
    context.run_migrations()
