"""subscription reference: the operator's identifier of a subscription, its key when loaded

A subscription loaded with a reference is updated by the next load of that reference, whatever
else changed (a corrected start date no longer creates a second subscription).

Revision ID: 0017_subscription_reference
Revises: 0014_sepa_2019
Create Date: 2026-12-01 11:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0017_subscription_reference'
down_revision = '0014_sepa_2019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('subscriptions') as batch:
        batch.add_column(sa.Column('reference', sa.String(length=40), nullable=True))
        batch.create_unique_constraint('uq_subscriptions_reference', ['reference'])


def downgrade() -> None:
    with op.batch_alter_table('subscriptions') as batch:
        batch.drop_constraint('uq_subscriptions_reference', type_='unique')
        batch.drop_column('reference')
