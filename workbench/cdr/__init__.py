"""CDR files: formats, parsing and record checks (pure: bytes and frames in, frames out)."""
