"""The documents job: render the PDFs of a run's invoices (or of named invoices) that are not
stored yet, store them in the FTP space and link them from their invoices (``invoices.document``).
Issued invoices and credit notes are Factur-X PDF/A-3 files, their EN 16931 XML embedded
(:mod:`workbench.documents.facturx`); drafts are plain PDFs.

Re-running after a failure renders and stores only the documents still missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import Engine, bindparam, select, update

from workbench.config import Settings
from workbench.db import schema as s
from workbench.db.frames import read_frame
from workbench.documents import invoice_models, operator_identity, render_invoices
from workbench.documents.facturx import facturx_documents
from workbench.errors import InputError, UnavailableError, WorkbenchError
from workbench.jobs.cluster import HERE, cluster, render_on_cluster
from workbench.reads.runs import run_row
from workbench.storage import Storage, invoice_path


@dataclass
class PublishReport:
    rendered: int = 0
    stored: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    #: where the PDFs were rendered: "on this machine", or "on a Dask cluster of N workers at ADDRESS"
    where: str = HERE


def publish_documents(engine: Engine, settings: Settings, invoice_ids: list[int] | None = None,
                      run_id: int | None = None, workers: int | None = None,
                      annex: bool | None = None) -> PublishReport:
    """Render and store the PDFs of a run's invoices (or of ``invoice_ids``) that are not stored
    yet, and link them from their invoices. Rendered in a pool of ``workers`` processes (default:
    one per core), or on the Dask cluster the ``dask_scheduler`` setting names
    (:func:`workbench.jobs.cluster.render_on_cluster`; the report's ``where`` says which)."""
    storage = Storage(settings.storage_url)
    with engine.connect() as connection:
        stmt = select(s.Invoice.id, s.Invoice.number, s.Invoice.kind, s.Invoice.status, s.Invoice.invoice_date,
                      s.Invoice.run_id, s.Invoice.document)
        stmt = stmt.where(s.Invoice.run_id == run_id) if run_id is not None else stmt.where(
            s.Invoice.id.in_([int(i) for i in invoice_ids or []]))
        rows = read_frame(connection, stmt.order_by(s.Invoice.number))
        report = PublishReport()
        todo = []
        for r in rows.itertuples(index=False):
            path = invoice_path(r.number, r.invoice_date, r.kind, r.run_id)
            if r.document == path and storage.exists(path):
                report.already.append(path)
            else:
                todo.append((int(r.id), r.number, r.status, path))
        if not todo:
            return report
        drafts = [t for t in todo if t[2] == "draft"]
        finals = [t for t in todo if t[2] != "draft"]
        pdfs: dict[str, bytes] = {}
        operator = operator_identity(settings)
        if annex is None:
            annex = settings.call_detail_annex.lower() in ("yes", "true", "1")
        groups = [(invoice_models(connection, [t[0] for t in group], annex, settings.timezone), draft,
                   [t[0] for t in group]) for group, draft in ((drafts, True), (finals, False)) if group]
    with cluster(settings.dask_scheduler) as on:
        for models, draft, ids in groups:
            if on is None:
                rendered = render_invoices(models, operator, draft, workers=workers, templates=settings.templates_dir)
            else:
                rendered = render_on_cluster(on, models, operator, draft, templates=settings.templates_dir)
                report.where = on.where
            if not draft:  # issued documents are Factur-X: the CII XML embedded, PDF/A-3
                with engine.connect() as connection:
                    rendered.update(facturx_documents(connection, ids, rendered, settings))
            pdfs.update(rendered)
    report.rendered = len(pdfs)
    links = []
    for invoice_id, number, _status, path in todo:
        upload = storage.put_many({path: pdfs[number]}, replace=True)
        if upload.failed:
            report.failed.update(upload.failed)
            continue
        report.stored.append(path)
        links.append({"i": invoice_id, "d": path})
    if links:
        with engine.begin() as connection:
            connection.execute(update(s.Invoice).where(s.Invoice.id == bindparam("i")).values(
                document=bindparam("d")), links)
    return report



@contextmanager
def storing_issued(issued: str, command: str) -> Iterator[None]:
    """Storing the PDFs of documents already issued: a failure inside raises an
    :class:`~workbench.errors.UnavailableError` that says what is issued (``issued``) and which
    ``command`` stores the PDFs once the FTP space is back (nothing issued is taken back)."""
    try:
        yield
    except WorkbenchError as exc:
        raise UnavailableError(f"{exc}. {issued}; store {command} once the FTP space is back",
                               code=exc.code) from None


def publish_invoices(engine: Engine, settings: Settings, numbers: list[str],
                     annex: bool | None = None) -> PublishReport:
    """:func:`publish_documents` of invoices and credit notes named by number;
    :class:`~workbench.errors.InputError` naming the unknown numbers."""
    with engine.connect() as connection:
        found = dict(connection.execute(
            select(s.Invoice.number, s.Invoice.id).where(s.Invoice.number.in_(numbers))).all())
    unknown = sorted(set(numbers) - set(found))
    if unknown:
        raise InputError(f"unknown invoice numbers: {', '.join(unknown)}", code="unknown_invoice")
    return publish_documents(engine, settings, invoice_ids=list(found.values()), annex=annex)


def publish_run(engine: Engine, settings: Settings, run_id: int, annex: bool | None = None) -> PublishReport:
    """:func:`publish_documents` of a billing run; :class:`~workbench.errors.InputError` if there
    is no such run."""
    with engine.connect() as connection:
        run_row(connection, run_id)
    return publish_documents(engine, settings, run_id=run_id, annex=annex)


def invoice_pdf(engine: Engine, settings: Settings, number: str) -> bytes | None:
    """The stored PDF of an invoice (draft or final), or rendered on the fly when it is not stored
    or the FTP space cannot give it; None for an unknown number."""
    with engine.connect() as connection:
        row = connection.execute(select(s.Invoice.id, s.Invoice.document, s.Invoice.status)
                                 .where(s.Invoice.number == number)).first()
        if row is None:
            return None
        if row.document:
            try:
                return Storage(settings.storage_url).get(row.document)
            except WorkbenchError:  # the space is down, its URL unusable, the file gone: render it
                pass
        models = invoice_models(connection, [row.id])
        pdfs = render_invoices(models, operator_identity(settings), draft=row.status == "draft", workers=1,
                               templates=settings.templates_dir)
        if row.status != "draft":
            pdfs.update(facturx_documents(connection, [row.id], pdfs, settings))
    return pdfs[number]

