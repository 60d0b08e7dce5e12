"""run approvals: reviewers' approvals of pre-production runs, and control reports emailed

Revision ID: 0015_run_approvals
Revises: 0017_subscription_reference
Create Date: 2026-12-01 11:00:00

``run_approvals``: who approved a pre-production run, when and why (and the production runs
forced without an approval, with the reason). ``report_deliveries``: the control report of a
run emailed to each address of ``report_recipients``, once. Runs already stored have neither.
"""

import sqlalchemy as sa
from alembic import op

revision = '0015_run_approvals'
down_revision = '0017_subscription_reference'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'run_approvals',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('run_id', sa.Integer(), nullable=False),
        sa.Column('approved_by', sa.String(length=100), nullable=False),
        sa.Column('approved_at', sa.DateTime(), nullable=False),
        sa.Column('comment', sa.Text(), server_default='', nullable=False),
        sa.Column('forced', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(['run_id'], ['billing_runs.id'], name=op.f('fk_run_approvals_run_id_billing_runs'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_run_approvals')),
    )
    with op.batch_alter_table('run_approvals') as batch:
        batch.create_index(batch.f('ix_run_approvals_run_id'), ['run_id'], unique=False)
    op.create_table(
        'report_deliveries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('run_id', sa.Integer(), nullable=False),
        sa.Column('recipient', sa.String(length=254), nullable=False),
        sa.Column('state', sa.String(length=20), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('sent_at', sa.DateTime(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['run_id'], ['billing_runs.id'],
                                name=op.f('fk_report_deliveries_run_id_billing_runs'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_report_deliveries')),
        sa.UniqueConstraint('run_id', 'recipient', name=op.f('uq_report_deliveries_run_id')),
    )
    with op.batch_alter_table('report_deliveries') as batch:
        batch.create_index(batch.f('ix_report_deliveries_run_id'), ['run_id'], unique=False)


def downgrade() -> None:
    op.drop_table('report_deliveries')
    op.drop_table('run_approvals')
