"""The compliance pipeline: its definition, its compiled (versioned) spec and its local runner."""
