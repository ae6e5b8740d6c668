"""Stage 6: serve the staged model in its own process and test its contract and predictions."""
