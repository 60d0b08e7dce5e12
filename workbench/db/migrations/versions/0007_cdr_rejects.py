"""CDR rejects a reference fix can cure are kept pending and re-processed; longer format names

Revision ID: 0004_cdr_rejects
Revises: 0006
Create Date: 2026-12-01 08:00:00

Rejects stored before this revision are ``final``: their call fields were not kept
(``workbench reprocess-rejects FILE`` reads a file again to make its unknown_line rejects pending).
"""

import sqlalchemy as sa
from alembic import op

revision = '0004_cdr_rejects'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cdr_rejects') as batch:
        batch.add_column(sa.Column('status', sa.String(length=10), server_default='final', nullable=False))
        batch.add_column(sa.Column('start_utc', sa.DateTime(), nullable=True))
        batch.add_column(sa.Column('calling', sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column('called', sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column('duration_s', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('switch_id', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('cdr_id', sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column('resolved_at', sa.DateTime(), nullable=True))
        batch.create_index('ix_cdr_rejects_status', ['status'], unique=False)
    with op.batch_alter_table('cdr_files') as batch:
        batch.alter_column('format', existing_type=sa.String(length=20), type_=sa.String(length=80),
                           existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('cdr_files') as batch:
        batch.alter_column('format', existing_type=sa.String(length=80), type_=sa.String(length=20),
                           existing_nullable=False)
    with op.batch_alter_table('cdr_rejects') as batch:
        batch.drop_index('ix_cdr_rejects_status')
        for column in ('resolved_at', 'cdr_id', 'switch_id', 'duration_s', 'called', 'calling', 'start_utc',
                       'status'):
            batch.drop_column(column)
