"""Invoice documents: the models read from the database (:mod:`workbench.documents.models`) and
their PDFs (:mod:`workbench.documents.pdf`, Jinja templates rendered by WeasyPrint)."""

from workbench.documents.models import invoice_models, operator_identity
from workbench.documents.pdf import (
    LABELS,
    TEMPLATES,
    html,
    render_batch,
    render_invoices,
    render_one,
    templates_folder,
)

__all__ = ["LABELS", "TEMPLATES", "html", "invoice_models", "operator_identity", "render_batch", "render_invoices",
           "render_one", "templates_folder"]
