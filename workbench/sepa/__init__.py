"""SEPA direct debits, the pure part: identifiers, the debits to make, the pain.008 message.

No database, no clock, no settings: frames and values in, frames and bytes out. The job that
reads the invoices and records the debits is :mod:`workbench.jobs.sepa`.
"""

from workbench.sepa.debits import (
    LEAD_DAYS,
    MANDATE_EXPIRY_MONTHS,
    SAME_MANDATE_NEW_AGENT,
    earliest_collection_date,
    mandate_expiry,
    sending_day,
    DEBIT_COLUMNS,
    FIRST,
    MAX_AMOUNT_CENTS,
    RECURRING,
    collection_date,
    is_business_day,
    mandate_problems,
    next_business_day,
    prepare_debits,
)
from workbench.sepa.identifiers import (
    ADDRESS_LINE_MAX,
    DEFAULT_VERSION,
    EEA,
    POSTCODE_MAX,
    TOWN_MAX,
    PostalAddress,
    debtor_address_problem,
    ID_MAX,
    NAME_MAX,
    REMITTANCE_MAX,
    SEPA_VERSIONS,
    Creditor,
    sepa_text,
    validate_bic,
    validate_creditor_id,
    validate_iban,
    validate_version,
)
from workbench.sepa.message import (
    DebitFile,
    build_pain008,
    direct_debit_file,
    new_message_id,
    schema,
    validate_pain008,
)

__all__ = [
    "ADDRESS_LINE_MAX", "EEA", "LEAD_DAYS", "MANDATE_EXPIRY_MONTHS", "POSTCODE_MAX", "SAME_MANDATE_NEW_AGENT",
    "TOWN_MAX", "PostalAddress", "debtor_address_problem", "earliest_collection_date", "mandate_expiry",
    "schema", "sending_day", "validate_pain008",
    "DEBIT_COLUMNS", "DEFAULT_VERSION", "FIRST", "ID_MAX", "MAX_AMOUNT_CENTS", "NAME_MAX", "RECURRING",
    "REMITTANCE_MAX", "SEPA_VERSIONS", "Creditor", "DebitFile", "build_pain008", "collection_date",
    "direct_debit_file", "is_business_day", "mandate_problems", "new_message_id", "next_business_day",
    "prepare_debits", "sepa_text",
    "validate_bic", "validate_creditor_id", "validate_iban", "validate_version",
]
