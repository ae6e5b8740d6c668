"""Versioned gate policies shipped with the suite."""
