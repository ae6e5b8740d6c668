"""Stage 8: roll out the approved model (canary, shadow or full) and record it in the ledger."""
