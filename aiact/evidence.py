"""Evidence reports: the structured JSON every gate records, and its HTML view for the KFP UI."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aiact import pages
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


# A report section of this name (a list of sentences) is shown under the verdict as notes for
# the reviewer: what the gate could not assess, and why (e.g. no production model to compare
# with yet), so that it is never mistaken for a passed check.
NOTES = "notes"


def _section_kind(content: Any) -> str:
    """How report.html.j2 shows a section: a mapping without nested mappings as a table (a
    list value as JSON in its cell), a list of scalars as a list, other nested data as JSON;
    a single value ("scalar") goes into the report's summary table."""
    if isinstance(content, dict) and all(not isinstance(v, dict) for v in content.values()):
        return "table"
    if isinstance(content, list) and all(not isinstance(v, dict | list) for v in content):
        return "list"
    return "value" if isinstance(content, dict | list) else "scalar"


def render_html(report: dict[str, Any], figures: Sequence[str] = ()) -> str:
    """A self-contained HTML page (aiact/templates/report.html.j2): verdict, policy sha256,
    the checks table (passed or breached per check), the report's notes for the reviewer,
    figures (trusted inline SVG made by the stage with aiact.plots), then each evidence
    section."""
    sections = report["sections"]
    notes = sections.get(NOTES) if isinstance(sections, dict) else None
    shown = [
        (str(name), _section_kind(content), content)
        for name, content in sections.items()
        if name != NOTES
    ]
    return pages.render(
        "report.html.j2",
        title=report["title"],
        report=report,
        notes=[str(n) for n in notes] if isinstance(notes, list) else [],
        figures=[pages.trusted(f) for f in figures],
        summary={name: content for name, kind, content in shown if kind == "scalar"},
        sections=[section for section in shown if section[1] != "scalar"],
    )


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


def page_type(report_type: str) -> str:
    """The MLMD type of a report's HTML view (`aiact.EvaluationReport` ->
    `aiact.EvaluationReportPage`): recorded beside the report, so the view is hashed, covered
    by the custody checks and bundled with the report it shows."""
    return f"{report_type}Page"


def gate_summary(report: Mapping[str, Any]) -> str:
    """A gate report as Markdown for the KFP run page: verdict, then every breached check (or
    that all passed), with value and limit."""
    gate = report.get("gate") or {}
    name = str(gate.get("gate", report.get("title", "gate")))
    checks = list(gate.get("checks") or ())
    breached = [c for c in checks if not c.get("passed")]
    verdict = "PASSED" if gate.get("passed") else "BREACHED"
    lines = [f"## {report.get('title', name)}", "", f"**Gate `{name}`: {verdict}**", ""]
    if breached:
        lines += ["| breached check | value | limit | detail |", "|---|---|---|---|"]
        for check in breached:
            detail = str(check.get("detail", "")).replace("|", "\\|")
            lines.append(
                f"| `{check['name']}` | {_md(check.get('value'))} | "
                f"{check.get('comparison', '')} {_md(check.get('limit'))} | {detail} |"
            )
    else:
        lines.append(f"All {len(checks)} checks passed.")
    policy = report.get("policy_sha256")
    if policy:
        lines += ["", f"Policy sha256: `{policy}`"]
    return "\n".join(lines) + "\n"


def _md(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_summary(path: Path | None, report: Mapping[str, Any]) -> None:
    """Write `gate_summary(report)` to `path` (a KFP Markdown output) when given."""
    if path is not None:
        write_atomic(path, gate_summary(report))


NOT_PRODUCED = "NOT_PRODUCED.txt"


def not_produced(path: Path, result: GateResult, *, directory: bool = True) -> None:
    """Fill an output the gate withholds on a breach (its task still completes, so KFP must
    find something at every output path): a note, never recorded in MLMD, so nothing can
    consume it as an artefact."""
    note = (
        f"Not produced: gate '{result.gate}' breached "
        + ", ".join(check.name for check in result.breaches)
        + ". The gate's verdict task halts the run.\n"
    )
    if directory:
        path.mkdir(parents=True, exist_ok=True)
        write_atomic(path / NOT_PRODUCED, note)
    else:
        write_atomic(path, note)
