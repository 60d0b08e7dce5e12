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
    for drawing); a month without rated calls has no chart: a message says so, and None is
    returned."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    if traffic.empty:
        text = f"No rated call in {period}: nothing to chart."
        display({"text/plain": text, "text/html": f"<p>{html.escape(text)}</p>"}, raw=True)
        return None

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


def pdf_pages_png(pdf: bytes, resolution: int = 110) -> list[bytes]:
    """Every page of a PDF as PNG, at ``resolution`` dpi (110: an A4 page 910 pixels wide, read
    without zooming), with poppler's ``pdftoppm``; ``[]`` when there is no PDF or no pdftoppm."""
    if not pdf or not shutil.which("pdftoppm"):
        return []
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "doc.pdf"
        source.write_bytes(pdf)
        subprocess.run(["pdftoppm", "-png", "-r", str(resolution), str(source), str(Path(folder) / "page")],
                       check=True, capture_output=True, timeout=120)
        # pdftoppm numbers the pages page-1.png ... (zero-padded to the page count's width)
        pages = sorted(Path(folder).glob("page-*.png"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
        return [page.read_bytes() for page in pages]


def pdf_document(pdf: bytes | None, filename: str):
    """A PDF readable in the page: a download link, then every page as an image
    (:func:`pdf_pages_png`) in a scrolling box, each page titled; a message when there is none."""
    w = _widgets()
    if not pdf:
        return w.HTML("<p>No document.</p>")
    pages = pdf_pages_png(pdf)
    link = w.HTML(download_link(pdf, filename, "application/pdf", f"Download {filename}"))
    if not pages:
        return w.VBox([link, w.HTML("<p>The pages cannot be shown here (poppler's pdftoppm is missing).</p>")])
    images = []
    for number, png in enumerate(pages, start=1):
        images += [w.HTML(f"<p><b>Page {number} of {len(pages)}</b></p>"),
                   w.Image(value=png, format="png", layout=w.Layout(width="900px", border="1px solid #ccc"))]
    return w.VBox([link, w.VBox(images, layout=w.Layout(max_height="1100px", overflow="auto"))])


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


def flagged_invoices(sheets: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The control report's invoice sheet with an ``Anomalies`` column first: the kinds of
    anomaly of each invoice's account (``Problem`` of the ``Anomalies`` sheet, joined by ``, ``;
    ``""`` for none), invoices with anomalies first, then by invoice number. A sheet that has its
    ``Anomalies`` column already (the control report's, by invoice) keeps it, moved first."""
    invoices = sheets["Invoices"].copy()
    if "Anomalies" in invoices:
        invoices.insert(0, "Anomalies", invoices.pop("Anomalies").fillna("").astype(str))
    else:
        anomalies = sheets["Anomalies"]
        kinds = (anomalies[anomalies["Line or key"].fillna("") != ""].groupby("Line or key")["Problem"]
                 .agg(lambda p: ", ".join(sorted(set(p)))))
        invoices.insert(0, "Anomalies", invoices["Account number"].map(kinds).fillna(""))
    invoices["_none"] = invoices["Anomalies"] == ""
    return (invoices.sort_values(["_none", "Invoice number"], kind="stable").drop(columns="_none")
            .reset_index(drop=True))


def set_choices(widget, options, value, observer=None) -> None:
    """Give a choice widget new ``options`` and ``value`` with ``observer`` (a callback observing
    its ``value``) told once, at the end, rather than for the first option on the way."""
    if observer is not None:
        widget.unobserve(observer, names="value")
    try:
        widget.options = options
        widget.value = value
    finally:
        if observer is not None:
            widget.observe(observer, names="value")


def _widgets():
    import ipywidgets as w

    return w


def _message(out, text: str, error: bool = False) -> None:
    from IPython.display import HTML, display

    colour = "#b00020" if error else "#1f4e79"
    with out:
        display(HTML(f'<p style="color:{colour}"><b>{html.escape(strip_bidi(text))}</b></p>'))



def _floats(values) -> list[float]:
    """Exact amounts as floats, only for drawing a chart (never for a sum or a comparison)."""
    return [float(v) for v in values]


def change_chart(by_type: pd.DataFrame, label: str = "Item type", title: str = ""):
    """Bars of the previous amount and this run's, side by side, for each row of a
    :class:`~workbench.reads.review.PeriodComparison` frame (EUR excl. VAT)."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 3.2))
    positions = list(range(len(by_type)))
    axes.bar([p - 0.2 for p in positions], _floats(by_type["Previous"]), width=0.4, label="Previous period")
    axes.bar([p + 0.2 for p in positions], _floats(by_type["This run"]), width=0.4, label="This run")
    axes.set_xticks(positions, [strip_bidi(str(v)) for v in by_type[label]])
    axes.set_ylabel("EUR excl. VAT")
    axes.set_title(title)
    axes.legend()
    figure.tight_layout()
    return figure


def monthly_chart(months: pd.DataFrame, title: str = "Billed by month and item type (EUR excl. VAT)"):
    """Stacked bars of a customer's billed amounts by period and item type
    (:func:`~workbench.reads.customers.monthly_billed`, integer cents drawn as euros)."""
    import matplotlib.pyplot as plt

    from workbench.invoicing.report import TYPE_LABELS

    figure, axes = plt.subplots(figsize=(8, 3.2))
    bottom_pos = [0.0] * len(months)
    bottom_neg = [0.0] * len(months)
    for kind, label in TYPE_LABELS.items():
        if kind not in months or not months[kind].any():
            continue
        values = [cents / 100 for cents in _floats(months[kind])]
        bottom = [bp if v >= 0 else bn for v, bp, bn in zip(values, bottom_pos, bottom_neg, strict=True)]
        axes.bar(list(months["period"]), values, bottom=bottom, label=label)
        bottom_pos = [b + max(v, 0) for b, v in zip(bottom_pos, values, strict=True)]
        bottom_neg = [b + min(v, 0) for b, v in zip(bottom_neg, values, strict=True)]
    axes.set_ylabel("EUR")
    axes.set_title(title)
    axes.tick_params(axis="x", labelrotation=45)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize="small")
    figure.tight_layout()
    return figure
