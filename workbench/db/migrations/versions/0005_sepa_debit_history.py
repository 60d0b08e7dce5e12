"""sepa debit history: an invoice debited again keeps its earlier debits

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 00:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sepa_debits') as batch:  # SQLite: the table is rebuilt
        batch.drop_constraint('uq_sepa_debits_invoice_id', type_='unique')
        batch.add_column(sa.Column('replaced_by_file_id', sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f('fk_sepa_debits_replaced_by_file_id_sepa_files'), 'sepa_files',
                                 ['replaced_by_file_id'], ['id'])
        batch.create_index(op.f('ix_sepa_debits_invoice_id'), ['invoice_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('sepa_debits') as batch:
        batch.drop_index(op.f('ix_sepa_debits_invoice_id'))
        batch.drop_constraint(op.f('fk_sepa_debits_replaced_by_file_id_sepa_files'), type_='foreignkey')
        batch.drop_column('replaced_by_file_id')
        batch.create_unique_constraint('uq_sepa_debits_invoice_id', ['invoice_id'])
