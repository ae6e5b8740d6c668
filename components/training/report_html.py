"""The training report's view for the KFP UI: per-epoch loss curves as inline SVG."""

from __future__ import annotations

from typing import Any

from aiact.evidence import build_report, render_html
from aiact.svg import line_chart


def render_training_html(report: dict[str, Any]) -> str:
    """The training report as HTML, with its train and validation loss curves."""
    history = report["history"]
    curves = line_chart(
        f"Loss per epoch (best epoch {report['best_epoch']} of {report['epochs_run']})",
        {
            split: [(row["epoch"], row[f"{split}_loss"]) for row in history]
            for split in ("train", "val")
        },
        "epoch",
        "binary cross-entropy",
    )
    return render_html(build_report("Training report", None, report), [curves])
