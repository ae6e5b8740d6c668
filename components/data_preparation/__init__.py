"""Stage 1: ingest a documented source, check its quality with TFDV, emit a versioned dataset."""
