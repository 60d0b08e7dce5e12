"""Emailing issued invoices and credit notes to their customers' invoice recipients.

* :mod:`workbench.mail.message`: the message of one delivery (templates, text, PDF attached);
* :mod:`workbench.mail.transports`: where messages are handed over (outbox folder or SMTP);
* :mod:`workbench.mail.ledger`: the delivery ledger (one row per invoice and recipient, planned,
  then pending, sent or failed; possibly sent, ``uncertain``, when nobody can tell);
* :mod:`workbench.mail.sending`: sending what is pending, each delivery at most once, resumable
  after a crash or an outage.
"""

from workbench.mail.ledger import (
    MAX_ATTEMPTS,
    DeliveryReport,
    Failure,
    PlanReport,
    Sent,
    plan_deliveries,
    release,
    reset_deliveries,
)
from workbench.mail.message import build_message, message_id_for, outbox_name, valid_address
from workbench.mail.sending import send_pending

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
    "release",
    "reset_deliveries",
    "send_pending",
    "valid_address",
]
