"""Emailing issued invoices and credit notes to their customers' invoice recipients.

* :mod:`workbench.mail.message`: the message of one delivery (templates, text, PDF attached);
* :mod:`workbench.mail.transports`: where messages are handed over (outbox folder or SMTP);
* :mod:`workbench.mail.deliveries`: the delivery ledger (planning, and sending each delivery at
  most once, resumable after a crash or an outage).
"""

from workbench.mail.deliveries import (
    MAX_ATTEMPTS,
    DeliveryReport,
    Failure,
    PlanReport,
    Sent,
    plan_deliveries,
    reset_deliveries,
    send_pending,
)
from workbench.mail.message import build_message, message_id_for, outbox_name, valid_address

__all__ = [
    "MAX_ATTEMPTS",
    "DeliveryReport",
    "Failure",
    "PlanReport",
    "Sent",
    "build_message",
    "message_id_for",
    "outbox_name",
    "plan_deliveries",
    "reset_deliveries",
    "send_pending",
    "valid_address",
]
