"""service periods: invoice lines name the subscription whose days they bill

Lines issued before this revision are back-filled: a recurring or prorated line names the
subscription of its invoice's customer, of its product code, whose dates hold the line's first
day of service (or, failing that, overlap its days; or, failing that, the customer's only
subscription of that product). Two lines of one invoice with the same product and days (two
subscriptions of the same product) name distinct subscriptions, in the order of their ids. So
days an old invoice billed in advance are known as billed, and not billed again.

Revision ID: 0005_service_periods
Revises: 0007_precision_and_runs
Create Date: 2026-12-01 08:00:00
"""

import calendar
from datetime import date
from decimal import Decimal

import sqlalchemy as sa
from alembic import op

revision = '0005_service_periods'
down_revision = '0007_precision_and_runs'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('invoice_items') as batch:
        batch.add_column(sa.Column('subscription_id', sa.Integer(), nullable=True))
        batch.create_index('ix_invoice_items_subscription_id', ['subscription_id'])
    _back_fill(op.get_bind())


def _back_fill(connection) -> None:
    """Name the subscription of each recurring or prorated line issued before this revision (see
    the module docstring)."""
    subscriptions: dict[tuple[int, str], list[tuple]] = {}
    for sid, customer, code, start, end, quantity in connection.execute(sa.text(
            "SELECT s.id, s.customer_id, p.code, s.start_date, s.end_date, s.quantity FROM subscriptions s "
            "JOIN products p ON p.id = s.product_id ORDER BY s.id")):
        subscriptions.setdefault((customer, code), []).append((sid, _day(start), _day(end), int(quantity)))
    lines = connection.execute(sa.text(
        "SELECT ii.id, ii.invoice_id, i.customer_id, ii.product_code, ii.period_from, ii.period_to, ii.quantity "
        "FROM invoice_items ii JOIN invoices i ON i.id = ii.invoice_id "
        "WHERE ii.subscription_id IS NULL AND ii.type IN ('recurring', 'prorated') "
        "AND ii.product_code IS NOT NULL AND ii.period_from IS NOT NULL ORDER BY ii.invoice_id, ii.id")).all()
    taken: dict[tuple, set[int]] = {}
    found = []
    for item, invoice, customer, code, first, last, quantity in lines:
        first, last = _day(first), _day(last) or _day(first)
        candidates = subscriptions.get((customer, code), [])
        holding = [c for c in candidates if c[1] <= first and (c[2] is None or first <= c[2])]
        overlapping = [c for c in candidates if c[1] <= last and (c[2] is None or first <= c[2])]
        choice = holding or overlapping or (candidates if len(candidates) == 1 else [])
        # the line's quantity is the subscription's x days / days of the month: those that match first
        month_days = calendar.monthrange(first.year, first.month)[1]
        whole = Decimal(str(quantity)) * month_days / ((last - first).days + 1)
        choice = sorted(choice, key=lambda c: (abs(whole) .to_integral_value() != c[3], c[0]))
        used = taken.setdefault((invoice, code, first, last), set())
        free = [c[0] for c in choice if c[0] not in used] or [c[0] for c in choice][:1]
        if free:
            used.add(free[0])
            found.append({"item": item, "sid": free[0]})
    if found:
        connection.execute(sa.text("UPDATE invoice_items SET subscription_id = :sid WHERE id = :item"), found)


def _day(value):
    """A date from the driver's value (SQLite returns text)."""
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def downgrade() -> None:
    with op.batch_alter_table('invoice_items') as batch:
        batch.drop_index('ix_invoice_items_subscription_id')
        batch.drop_column('subscription_id')
