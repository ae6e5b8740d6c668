"""The training report's view for the KFP UI: per-epoch loss curves (aiact.plots, inline SVG)
with the best epoch, whose weights were kept, marked."""

from __future__ import annotations

from typing import Any

from aiact import plots
from aiact.evidence import build_report, render_html

SPLITS = {"train": "train loss", "val": "validation loss"}


def loss_figure(report: dict[str, Any]) -> str:
    """The train and validation loss per epoch, the best (lowest validation loss) epoch marked."""
    history = report["history"]
    return plots.loss_curves(
        [int(row["epoch"]) for row in history],
        {
            label: [float(row[f"{split}_loss"]) for row in history]
            for split, label in SPLITS.items()
        },
        int(report["best_epoch"]),
        f"Loss per epoch (best epoch {report['best_epoch']} of {report['epochs_run']}, "
        "chosen on validation loss; its weights were kept)",
        y_label="binary cross-entropy",
        best_series=SPLITS["val"],
    )


def render_training_html(report: dict[str, Any]) -> str:
    """The training report as HTML, with its train and validation loss curves."""
    return render_html(build_report("Training report", None, report), [loss_figure(report)])
