"""What the widgets show: messages, download links, the highlighted invoice table, charts and
PDF previews. Customer text is escaped wherever it becomes HTML."""

from __future__ import annotations

import base64
import html
import shutil
import subprocess
import tempfile
from decimal import Decimal
from pathlib import Path

import pandas as pd

from workbench.invoicing.report import AMOUNT_COLUMNS
from workbench.money import format_money
from workbench.text import strip_bidi

#: the locale amounts are written in on screens (the widgets' text is English)
LOCALE = "en"
#: the money columns of the control report's invoice sheet
MONEY_COLUMNS = {*AMOUNT_COLUMNS.values(), "Total excl. VAT", "VAT", "Account credit applied"}


def html_text(value) -> str:
    """Customer text as HTML: escaped, without bidirectional controls (:func:`workbench.text.strip_bidi`)."""
    return html.escape(strip_bidi(str(value)))


def _cleaned(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with bidirectional controls removed from its text columns (other dtypes kept)."""
    texts = [column for column in frame.columns
             if frame[column].dtype == object or pd.api.types.is_string_dtype(frame[column].dtype)]
    return frame.assign(**{column: frame[column].map(strip_bidi) for column in texts}) if texts else frame


def shown(frame: pd.DataFrame):
    """A frame as a widget or dashboard shows it: missing values empty (never ``None``, ``nan``
    or ``<NA>``), text escaped (a Styler writes cell text into its HTML as it is otherwise) and
    without bidirectional controls."""
    return _cleaned(frame).style.format(na_rep="", escape="html")


def _money_cell(value) -> str:
    if value is None or (not isinstance(value, Decimal) and pd.isna(value)):
        return ""
    return format_money(value, locale=LOCALE)


def revenue_chart(traffic: pd.DataFrame, period: str):
    """A stacked bar chart of revenue by zone and band (the exact amounts become floats only
    for drawing)."""
    import matplotlib.pyplot as plt

    pivot = traffic.assign(revenue_eur=traffic["revenue_eur"].astype(float)).pivot_table(
        index="zone_code", columns="band", values="revenue_eur", aggfunc="sum")
    axes = pivot.plot.barh(stacked=True, figsize=(7, 4), title=f"Revenue by zone and band, {period} (EUR)")
    axes.set_xlabel("EUR")
    plt.tight_layout()
    return axes


def pdf_preview_png(pdf: bytes, resolution: int = 60) -> bytes | None:
    """The first page of a PDF as PNG (with poppler's pdftoppm), or None if unavailable."""
    if not pdf or not shutil.which("pdftoppm"):
        return None
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "doc.pdf"
        source.write_bytes(pdf)
        subprocess.run(["pdftoppm", "-png", "-r", str(resolution), "-f", "1", "-l", "1", "-singlefile",
                        str(source), str(Path(folder) / "page")], check=True, capture_output=True, timeout=60)
        return (Path(folder) / "page.png").read_bytes()


def download_link(data: bytes, filename: str, mime: str, label: str | None = None) -> str:
    """An HTML link that downloads ``data`` (works in JupyterLab and in Voila)."""
    encoded = base64.b64encode(data).decode()
    return (f'<a download="{html_text(filename)}" href="data:{html.escape(mime)};base64,{encoded}">'
            f"{html_text(label or filename)}</a>")


def styled_invoices(sheets: dict[str, pd.DataFrame]):
    """The control report's invoice table, anomalies first and highlighted, amounts written for
    people (:func:`workbench.money.format_money`) and customer text escaped."""
    invoices = _cleaned(sheets["Invoices"])
    flagged = set(sheets["Anomalies"]["Line or key"]) - {""}
    invoices.insert(0, "Anomaly", invoices["Account number"].isin(flagged))
    invoices = invoices.sort_values(["Anomaly", "Invoice number"], ascending=[False, True]).reset_index(drop=True)

    def colour(row):
        return ["background-color: #fde2e1" if row["Anomaly"] else ""] * len(row)

    money = {column: _money_cell for column in invoices.columns if column in MONEY_COLUMNS}
    # customer text is escaped (a Styler writes cell text into its HTML as it is otherwise)
    text = [column for column in invoices.columns if column not in money]
    return (invoices.style.apply(colour, axis=1).format(money, na_rep="", subset=list(money))
            .format(na_rep="", escape="html", subset=text))


def _widgets():
    import ipywidgets as w

    return w


def _message(out, text: str, error: bool = False) -> None:
    from IPython.display import HTML, display

    colour = "#b00020" if error else "#1f4e79"
    with out:
        display(HTML(f'<p style="color:{colour}"><b>{html.escape(strip_bidi(text))}</b></p>'))

