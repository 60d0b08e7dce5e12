"""SEPA direct debits, the pure part: identifiers, the debits to make, the pain.008 message.

No database, no clock, no settings: frames and values in, frames and bytes out. The job that
reads the invoices and records the debits is :mod:`workbench.jobs.sepa`.
"""

from workbench.sepa.debits import (
    DEBIT_COLUMNS,
    FIRST,
    LEAD_DAYS,
    MANDATE_EXPIRY_MONTHS,
    MAX_AMOUNT_CENTS,
    RECURRING,
    SAME_MANDATE_NEW_AGENT,
    collection_date,
    earliest_collection_date,
    is_business_day,
    mandate_expiry,
    mandate_problems,
    next_business_day,
    prepare_debits,
    sending_day,
)
from workbench.sepa.identifiers import (
    ADDRESS_LINE_MAX,
    DEFAULT_VERSION,
    EEA,
    ID_MAX,
    NAME_MAX,
    POSTCODE_MAX,
    REMITTANCE_MAX,
    SEPA_VERSIONS,
    TOWN_MAX,
    Creditor,
    PostalAddress,
    debtor_address_problem,
    identifier_problem,
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
    "TOWN_MAX", "PostalAddress", "debtor_address_problem", "identifier_problem", "earliest_collection_date",
    "mandate_expiry",
    "schema", "sending_day", "validate_pain008",
    "DEBIT_COLUMNS", "DEFAULT_VERSION", "FIRST", "ID_MAX", "MAX_AMOUNT_CENTS", "NAME_MAX", "RECURRING",
    "REMITTANCE_MAX", "SEPA_VERSIONS", "Creditor", "DebitFile", "build_pain008", "collection_date",
    "direct_debit_file", "is_business_day", "mandate_problems", "new_message_id", "next_business_day",
    "prepare_debits", "sepa_text",
    "validate_bic", "validate_creditor_id", "validate_iban", "validate_version",
]
