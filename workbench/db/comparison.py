"""What a comparison of the database with the schema (Alembic's ``compare_metadata``, the
migrations' environment) leaves out: what each back-end keeps in another form than the schema
declares it.

* the partitions of a table partitioned by period (PostgreSQL, :mod:`workbench.db.partitions`):
  the schema names the partitioned table only;
* the indexes of no use within a partition, which PostgreSQL does without
  (:data:`NOT_IN_PARTITIONS`, migration ``0021_no_period_index``).
"""

from __future__ import annotations

from typing import Any

from workbench.db.partitions import is_partition

#: indexes of the schema by the partition key alone (every row of a partition has the same
#: value), which PostgreSQL does without
NOT_IN_PARTITIONS = frozenset({"ix_rated_calls_period"})


def comparison_options(dialect: str) -> dict[str, Any]:
    """Alembic's ``include_name`` and ``include_object`` hooks for a database of ``dialect``
    (``"sqlite"``, ``"postgresql"``), as keyword arguments of ``context.configure`` or the
    ``opts`` of ``MigrationContext.configure``."""

    def include_name(name: str | None, kind: str, parent_names: dict) -> bool:
        return not (kind == "table" and name is not None and is_partition(name))

    def include_object(obj: Any, name: str | None, kind: str, reflected: bool, compare_to: Any) -> bool:
        if dialect != "postgresql":
            return True
        return not (kind == "index" and name in NOT_IN_PARTITIONS)

    return {"include_name": include_name, "include_object": include_object}
