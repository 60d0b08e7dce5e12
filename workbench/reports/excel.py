"""The billing control report as an .xlsx file (xlsxwriter), from the report's DataFrames.

Every text cell is written as a string: a customer name such as ``=HYPERLINK(...)``,
``+33 Conseil`` or ``@SUM(...)`` stays text, never a formula or a link. Money columns (exact
``Decimal`` euros in the frames) become numbers with a currency format: Excel keeps numbers as
binary floating point, so the conversion happens here, at the last step, on values already
rounded to the cent. Other decimals (quantities, VAT rates) are numbers too, a whole one shown
without decimals (``20``, never ``20.``), another with what it has (``5.5``, ``2.08``). Each
sheet has a frozen header and filters; the invoice sheet ends with a totals row (the sums are
computed exactly and written as numbers). Each sheet prints landscape on A4, as wide as one
page, its header row repeated on every page, the report's title and the page number in the
footer.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import xlsxwriter

NUMBER_COLUMNS = {"Quantity", "VAT rate (%)", "Minutes"}  # decimals that are not money
#: the number formats of a decimal that is not money: whole, or with its decimals (up to 4)
WHOLE_FORMAT, DECIMAL_FORMAT = "#,##0", "#,##0.0###"
#: decimals summed in the first sheet's totals row, with their number format (minutes: 2 decimals,
#: as :func:`workbench.money.minutes` gives them)
TOTALLED_NUMBERS = {"Minutes": "#,##0.00"}
MONEY_FORMAT = '#,##0.00 "€";[Red]-#,##0.00 "€"'
#: call prices and rated amounts are exact to 1/10,000 EUR: shown so, not rounded to the cent
PRICE_FORMAT = '#,##0.0000 "€";[Red]-#,##0.0000 "€"'


def _cells(values: list, convert) -> list:
    """``values`` as written to their cells by ``convert``; ``None`` (a blank cell) where missing."""
    return [None if _is_missing(v) else convert(v) for v in values]


def _is_missing(value) -> bool:
    return value is None or (not isinstance(value, (str, bytes, Decimal)) and pd.isna(value))


def _kind(series: pd.Series) -> str:
    values = [v for v in series.tolist() if not _is_missing(v)]
    if values and all(isinstance(v, Decimal) for v in values):
        if series.name in NUMBER_COLUMNS:
            return "number"
        return "price" if any(v.as_tuple().exponent < -2 for v in values) else "money"
    if pd.api.types.is_integer_dtype(series.dtype) or (values and all(isinstance(v, int) for v in values)):
        return "integer"
    if values and all(isinstance(v, (date, datetime)) for v in values):
        return "date"
    return "text"


def _print_setup(sheet, title: str) -> None:
    """Landscape A4, one page wide (as many pages long as needed), the header row on every page,
    the title and "page N of M" in the footer."""
    sheet.set_landscape()
    sheet.set_paper(9)  # A4
    sheet.fit_to_pages(1, 0)
    sheet.repeat_rows(0)
    sheet.set_margins(left=0.4, right=0.4, top=0.5, bottom=0.6)
    sheet.set_footer("&L" + title.replace("&", "&&") + "&RPage &P of &N")


def write_control_report(sheets: dict[str, pd.DataFrame], path: str | Path, title: str = "") -> Path:
    """Write the report's sheets to ``path`` (the first sheet gets a totals row)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False,
               "default_date_format": "yyyy-mm-dd"}
    with xlsxwriter.Workbook(str(path), options) as book:
        header = book.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True})
        money = book.add_format({"num_format": MONEY_FORMAT})
        money_total = book.add_format({"num_format": MONEY_FORMAT, "bold": True, "top": 1})
        price = book.add_format({"num_format": PRICE_FORMAT})
        integer = book.add_format({"num_format": "#,##0"})
        integer_total = book.add_format({"num_format": "#,##0", "bold": True, "top": 1})
        whole = book.add_format({"num_format": WHOLE_FORMAT})
        fraction = book.add_format({"num_format": DECIMAL_FORMAT})
        totalled = {column: (book.add_format({"num_format": fmt}),
                             book.add_format({"num_format": fmt, "bold": True, "top": 1}))
                    for column, fmt in TOTALLED_NUMBERS.items()}
        day = book.add_format({"num_format": "yyyy-mm-dd"})
        bold = book.add_format({"bold": True, "top": 1})
        if title:
            book.set_properties({"title": title})
        for index, (name, frame) in enumerate(sheets.items()):
            sheet = book.add_worksheet(name[:31])
            kinds = [_kind(frame[c]) for c in frame.columns]
            for col, column in enumerate(frame.columns):
                sheet.write_string(0, col, str(column), header)
                width = max([len(str(column))] + [len(str(v)) for v in frame[column].head(200).tolist()])
                sheet.set_column(col, col, min(max(width + 2, 10), 60))
            # per column: its values as written (None: a blank cell), the writer and the styles
            # (computed once per column, not per cell)
            columns = []
            for col, (column, kind) in enumerate(zip(frame.columns, kinds, strict=True)):
                values = frame[column].tolist()
                if kind in ("money", "price"):
                    cells = _cells(values, float)
                    styles, write = (money if kind == "money" else price), sheet.write_number
                elif kind == "number":
                    cells, write = _cells(values, float), sheet.write_number
                    styles = totalled[column][0] if column in totalled else _cells(
                        values, lambda v: whole if Decimal(v) == Decimal(v).to_integral_value() else fraction)
                elif kind == "integer":
                    cells, styles, write = _cells(values, int), integer, sheet.write_number
                elif kind == "date":
                    cells = _cells(values, lambda v: pd.Timestamp(v).to_pydatetime())
                    styles, write = day, sheet.write_datetime
                else:
                    cells, styles, write = _cells(values, str), None, sheet.write_string
                columns.append((col, cells, styles, write))
            for col, cells, styles, write in columns:
                per_cell = isinstance(styles, list)
                for row, value in enumerate(cells):
                    if value is not None:
                        style = styles[row] if per_cell else styles
                        if style is None:
                            write(row + 1, col, value)
                        else:
                            write(row + 1, col, value, style)
            last = len(frame)
            _print_setup(sheet, title or name)
            sheet.freeze_panes(1, 0)
            sheet.autofilter(0, 0, max(last, 1), max(len(frame.columns) - 1, 0))
            if index == 0 and last:
                sheet.write_string(last + 1, 0, "Total", bold)
                for col, (column, kind) in enumerate(zip(frame.columns, kinds, strict=True)):
                    values = [v for v in frame[column].tolist() if not _is_missing(v)]
                    if kind == "money":
                        sheet.write_number(last + 1, col, float(sum(values, Decimal(0))), money_total)
                    elif kind == "integer":
                        sheet.write_number(last + 1, col, int(sum(values)), integer_total)
                    elif kind == "number" and column in totalled:
                        sheet.write_number(last + 1, col, float(sum(values, Decimal(0))), totalled[column][1])
    return path
