"""Stage 5: promote the evaluated model to `staging` with its evidence attached."""
