"""Shared services of the AI Act compliance suite: lineage, storage, policy, evidence, approval."""

__version__ = "0.1.0"
