"""Alembic environment: the engine comes from ``workbench.db.engine.alembic_config``."""

from alembic import context

from workbench.db.comparison import comparison_options
from workbench.db.schema import Base

config = context.config
engine = config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # partitions, and foreign keys checked by triggers (PostgreSQL): not as the schema says
        **comparison_options(connection.dialect.name),
    )
    context.run_migrations()
