"""faults: a SEPA file is recorded (with its XML) before it is stored, then marked published

Revision ID: 0014_faults
Revises: 0005_service_periods
Create Date: 2026-12-01 09:00:00

Files recorded before this revision were stored before they were recorded: they are
``published`` and keep no XML.
"""

import sqlalchemy as sa
from alembic import op

revision = '0014_faults'
down_revision = '0005_service_periods'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sepa_files') as batch:
        batch.add_column(sa.Column('status', sa.String(length=20), server_default='published', nullable=False))
        batch.add_column(sa.Column('xml', sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('sepa_files') as batch:
        batch.drop_column('xml')
        batch.drop_column('status')
