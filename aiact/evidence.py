"""Evidence reports: the structured JSON every gate records, and its HTML view for the KFP UI."""

from __future__ import annotations

import html
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiact.policy import GateResult

# Marks a passed check that every approver must acknowledge explicitly (e.g. a fairness check
# with too few members of a group to conclude, in production).
ACKNOWLEDGE = "requires every approver's acknowledgement"


def acknowledgements_required(report: dict[str, Any]) -> tuple[str, ...]:
    """The findings of a gate report that every approver must acknowledge."""
    checks = (report.get("gate") or {}).get("checks") or []
    return tuple(
        str(c["name"]) for c in checks if c.get("passed") and ACKNOWLEDGE in str(c.get("detail"))
    )


def build_report(
    title: str, gate: GateResult | None, sections: dict[str, Any], *, policy_sha256: str = ""
) -> dict[str, Any]:
    """Assemble a report: the gate verdict (if the stage is a gate) and named evidence sections."""
    report: dict[str, Any] = {"title": title, "sections": sections}
    if gate is not None:
        report["gate"] = gate.to_dict()
        report["policy_sha256"] = policy_sha256
    return report


def write_atomic(path: Path, text: str) -> None:
    """Write a file so that a reader sees either nothing or the whole file: a temporary file in
    the same directory, flushed to disk, then renamed over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json(path: Path, report: dict[str, Any]) -> None:
    """Write a report as stable, human-diffable JSON (atomically)."""
    write_atomic(path, json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return f"<pre>{html.escape(json.dumps(value, indent=1, default=str))}</pre>"
    return html.escape(str(value))


def render_html(report: dict[str, Any], figures: Sequence[str] = ()) -> str:
    """A self-contained HTML page: verdict, checks table, figures (trusted inline SVG made by
    the stage), then each evidence section."""
    title = html.escape(report["title"])
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{title}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "table{border-collapse:collapse}td,th{border:1px solid #999;padding:4px 8px}"
        ".ok{color:#060}.breach{color:#b00;font-weight:bold}"
        ".plots{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}</style></head><body>",
        f"<h1>{title}</h1>",
    ]
    gate = report.get("gate")
    if gate:
        verdict = "PASSED" if gate["passed"] else "FAILED"
        css = "ok" if gate["passed"] else "breach"
        parts.append(f"<p class='{css}'>Gate <b>{html.escape(gate['gate'])}</b>: {verdict}</p>")
        parts.append(f"<p>Policy sha256: <code>{html.escape(report['policy_sha256'])}</code></p>")
        parts.append("<table><tr><th>check</th><th>value</th><th>limit</th><th>verdict</th>")
        parts.append("<th>detail</th></tr>")
        for check in gate["checks"]:
            css = "ok" if check["passed"] else "breach"
            parts.append(
                f"<tr><td>{_cell(check['name'])}</td><td>{_cell(check['value'])}</td>"
                f"<td>{_cell(check['comparison'])} {_cell(check['limit'])}</td>"
                f"<td class='{css}'>{'ok' if check['passed'] else 'BREACH'}</td>"
                f"<td>{_cell(check['detail'])}</td></tr>"
            )
        parts.append("</table>")
    if figures:
        parts.append("<h2>Plots</h2><div class='plots'>")
        parts.extend(figures)
        parts.append("</div>")
    for name, content in report["sections"].items():
        parts.append(f"<h2>{html.escape(name)}</h2>")
        if isinstance(content, dict) and all(not isinstance(v, dict) for v in content.values()):
            rows = "".join(
                f"<tr><td>{_cell(k)}</td><td>{_cell(v)}</td></tr>" for k, v in content.items()
            )
            parts.append(f"<table>{rows}</table>")
        else:
            parts.append(_cell(content))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    json_path: Path,
    html_path: Path | None,
    report: dict[str, Any],
    *,
    figures: Sequence[str] = (),
) -> None:
    """Write the JSON evidence and, when asked, its HTML view (with any figures)."""
    write_json(json_path, report)
    if html_path is not None:
        write_atomic(html_path, render_html(report, figures))
