"""The eight pipeline stages: per stage, `core.py` (plain logic), `executor.py` (I/O and
lineage) and `component.py` (the thin KFP declaration)."""
