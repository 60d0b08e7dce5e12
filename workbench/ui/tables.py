"""Tables people can work with, in the analysts' notebooks and the reviewers' dashboards: sorted
by a click on a column, filtered column by column, searched, paginated, every value whole,
amounts in euros as the locale writes them and columns named for people.

The tables are itables' DataTables HTML, shown in JupyterLab, in Voila and inside ``Output``
widgets (the library is loaded once per page by :func:`tables_ready`, not sent again with each
table as an anywidget would: a dashboard shows a dozen tables). Cell text is HTML-escaped by itables
before it reaches the browser (``allow_html`` stays off) and bidirectional controls are removed
(:func:`workbench.text.strip_bidi`): a customer's name is text, never markup.

Amounts stay exact up to the browser: each money column is shown as
:func:`workbench.money.format_money` writes it and sorted on a hidden integer column in
1/10,000 EUR (never a float).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal

import numpy as np
import pandas as pd

from workbench.invoicing.report import AMOUNT_COLUMNS
from workbench.money import CENT_SCALE, PRICE_SCALE, format_money, to_decimal
from workbench.text import strip_bidi

#: the locale amounts are written in on screens (the widgets' text is English)
LOCALE = "en"

#: the controls around every table, even one that fits on a page (itables leaves them out of a
#: table that fits on one page when its layout is the default one: ``top`` makes it another)
LAYOUT = {"topStart": "pageLength", "topEnd": "search", "bottomStart": "info", "bottomEnd": "paging", "top": None}

#: names for people of the columns the reads return (others: ``snake_case`` becomes ``Snake case``)
LABELS = {
    "account_number": "Account number", "name": "Name", "number": "Number", "kind": "Kind", "period": "Period",
    "invoice_date": "Invoice date", "due_date": "Due date", "total_excl_cents": "Total excl. VAT",
    "total_vat_cents": "VAT", "total_incl_cents": "Total incl. VAT", "credit_applied_cents": "Account credit applied",
    "net_payable_cents": "Net payable", "collection_offset_cents": "Taken off the direct debit",
    "price_cents": "List price", "price_override_cents": "Agreed price", "amount_cents": "Amount",
    "amount_eur": "Amount", "revenue_eur": "Revenue", "zone_code": "Zone", "band": "Time band", "code": "Code",
    "message": "Message", "source": "File", "key": "Line", "raw": "Record as received", "status": "Status",
    "email": "Email", "invoice_recipient": "Receives invoices", "quantity": "Quantity", "start_date": "From",
    "end_date": "To", "valid_from": "Valid from", "valid_to": "Valid to", "reference": "Mandate reference",
    "signature_date": "Signed on", "iban": "IBAN", "bic": "BIC", "entry_date": "Date", "description": "Description",
    "reason": "Reason", "calls": "Calls", "minutes": "Minutes", "example": "Example", "records": "Records",
    "file": "File", "created_at": "Created at", "created_by": "Launched by", "invoices": "Invoices", "id": "Run",
    "document": "Document", "sent_at": "Sent at", "recipient": "Recipient", "state": "State",
}

#: money columns of the control report, the comparison and the reads' frames, by their people's name
MONEY_NAMES = {*AMOUNT_COLUMNS.values(), "Total excl. VAT", "VAT", "Account credit applied", "Amount excl. VAT",
               "Unit price", "Late calls amount", "Total A", "Total B", "Change", "Amount", "Revenue", "Net payable",
               "Total incl. VAT", "List price", "Agreed price", "Price", "Taken off the direct debit", "Previous",
               "This run", "Amount (EUR)"}


def people_name(column) -> str:
    """The name people read for a column: :data:`LABELS`, else ``snake_case`` written as words
    (``_cents`` and ``_eur`` dropped: the cell says the currency)."""
    text = str(column)
    if text in LABELS:
        return LABELS[text]
    if text != text.lower() or "_" not in text:
        return text
    for suffix in ("_cents", "_eur", "_units"):
        text = text.removesuffix(suffix)
    return text.replace("_", " ").capitalize()


def _is_missing(value) -> bool:
    return value is None or (not isinstance(value, Decimal | str) and pd.isna(value))


def _money_value(value, column: str) -> Decimal | None:
    """A money cell as exact ``Decimal`` euros: ``_cents`` columns are integer cents, ``_units``
    columns 1/10,000 EUR, others ``Decimal`` euros already (or integers of euros)."""
    if _is_missing(value):
        return None
    if isinstance(value, float):
        raise TypeError(f"{column}: money is never a float ({value!r})")
    if column.endswith("_cents"):
        return to_decimal(int(value), CENT_SCALE)
    if column.endswith("_units"):
        return to_decimal(int(value), PRICE_SCALE)
    return value if isinstance(value, Decimal) else Decimal(int(value))


def _text(value) -> str:
    """A cell written for people: missing values empty, dates ISO, booleans yes/no, text
    without bidirectional controls."""
    if _is_missing(value):
        return ""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, datetime | pd.Timestamp):
        return f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, date):
        return value.isoformat()
    return strip_bidi(str(value))


def _sort_key(amount: Decimal | None) -> int | None:
    """The hidden sort value of an amount: integer 1/10,000 EUR (exact for every amount the
    workbench stores: cents and call prices)."""
    return None if amount is None else int(amount.scaleb(4).to_integral_value())


def money_columns(frame: pd.DataFrame, money: Iterable[str] = ()) -> list[str]:
    """The columns of ``frame`` shown as money: those named in ``money``, ``*_cents``,
    ``*_units`` and ``*_eur`` columns, and the known money columns (:data:`MONEY_NAMES`, and the
    comparison's ``Change ...`` columns)."""
    wanted = set(money)
    return [str(c) for c in frame.columns
            if str(c) in wanted or str(c).endswith(("_cents", "_units", "_eur")) or str(c) in MONEY_NAMES
            or people_name(c) in MONEY_NAMES or str(c).startswith("Change")]


def table_frame(frame: pd.DataFrame, money: Iterable[str] = ()) -> tuple[pd.DataFrame, dict[int, int]]:
    """``frame`` as the table shows it: every cell text (money by :func:`~workbench.money.format_money`
    in :data:`LOCALE`, other values by :func:`_text`; integer columns stay integers so that they
    sort as numbers), columns named for people, and for each money column a hidden ``Int64``
    sort column (integer 1/10,000 EUR written in digits, ``""`` when missing: DataTables sorts
    digits as numbers) appended at the end; the mapping of a money column's position to
    its sort column's position."""
    money = money_columns(frame, money)
    shown = pd.DataFrame(index=range(len(frame)))
    sort_columns = {}
    order_of: dict[int, int] = {}
    for position, column in enumerate(frame.columns):
        values = frame[column].reset_index(drop=True)
        name = people_name(column)
        if str(column) in money:
            amounts = [_money_value(v, str(column)) for v in values]
            shown[name] = [("" if a is None else format_money(a, locale=LOCALE)) for a in amounts]
            sort_columns[position] = ["" if a is None else str(_sort_key(a)) for a in amounts]
        elif pd.api.types.is_integer_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
            shown[name] = (values.astype(np.int64) if not values.isna().any()
                           else values.map(lambda v: "" if pd.isna(v) else str(int(v))).astype(object))
        else:
            shown[name] = values.map(_text).astype(object)
    for position, values in sort_columns.items():
        order_of[position] = len(shown.columns)
        shown[f"sort {position}"] = pd.Series(values, dtype=object)
    return shown, order_of


_READY = False


def tables_ready() -> None:
    """Load the tables' JavaScript (DataTables, from the itables package: nothing is fetched from
    the internet) into the page once per kernel, where the notebook or dashboard is being
    displayed; nothing outside IPython."""
    global _READY
    if _READY:
        return
    from IPython import get_ipython

    if get_ipython() is None:
        return
    from itables import init_notebook_mode

    init_notebook_mode(all_interactive=False, connected=False)
    _READY = True


def table_html(frame: pd.DataFrame, money: Iterable[str] = (), *, page_length: int = 10, order=None,
               caption: str | None = None) -> str:
    """The HTML of :func:`table` (a table element filled by DataTables with the escaped cells)."""
    from itables import to_html_datatable

    shown, order_of = table_frame(frame, money)
    visible = len(frame.columns)
    column_defs = [{"targets": list(range(visible, len(shown.columns))), "visible": False, "searchable": False}]
    column_defs += [{"targets": position, "orderData": [sort], "className": "dt-right"}
                    for position, sort in order_of.items()]
    # text to the left, counts to the right, whatever type DataTables finds in the text
    texts = [p for p, c in enumerate(shown.columns[:visible]) if p not in order_of and shown[c].dtype == object]
    if texts:
        column_defs.append({"targets": texts, "className": "dt-left"})
    names = list(shown.columns)
    first = [[names.index(people_name(c) if c not in names else c), how] for c, how in (order or [])]
    return _data_out_of_script(to_html_datatable(
        shown, caption=caption, columnDefs=column_defs, order=first, pageLength=page_length,
        lengthMenu=[*sorted({page_length, 10, 25, 50, 100}), {"label": "All", "value": -1}], maxBytes=0,
        maxColumns=0, column_filters="footer", text_in_header_can_be_selected=False, scrollX=True, layout=LAYOUT,
        classes="display compact cell-border", showIndex=False, allow_html=False, display_logo_when_loading=False,
        connected=False,
        style="table-layout:auto;width:100%;margin:0;caption-side:top"))


def _data_out_of_script(markup: str) -> str:
    """itables' HTML with the table's arguments (its cells among them) moved out of the script
    into the table element's ``data-dt-args`` attribute (HTML-escaped), the script reading them
    from there: customer text is never in a script's text, only in an attribute and in cells."""
    import json

    marker = "let dt_args = "
    start = markup.index(marker)
    args, end = json.JSONDecoder().raw_decode(markup, start + len(marker))
    table_id = re.search(r'<table id="([^"]+)"', markup).group(1)
    markup = markup[:start] + "let dt_args = JSON.parse(table.dataset.dtArgs)" + markup[end:]
    return markup.replace(f'<table id="{table_id}"',
                          f'<table id="{table_id}" data-dt-args="{html.escape(json.dumps(args), quote=True)}"', 1)


def table(frame: pd.DataFrame, money: Iterable[str] = (), *, page_length: int = 10, order=None,
          caption: str | None = None):
    """``frame`` as an interactive table to display (an :class:`IPython.display.HTML`): click a
    column's name to sort, a filter box under each column, a search box, pages of
    ``page_length`` rows (or 10, 25, 50, 100, all), whole values, horizontal scrolling for wide
    tables. ``money``: columns to write as euros besides those found by :func:`money_columns`;
    ``order``: ``[(column, "asc" or "desc")]`` the first sort (default: as ``frame`` is ordered).
    The DataTables library is loaded first if it is not yet (:func:`tables_ready`)."""
    from IPython.display import HTML

    tables_ready()
    return HTML(table_html(frame, money, page_length=page_length, order=order, caption=caption))
