"""Output documents: the Excel control report (and, later, invoice PDFs)."""
