"""The HTML view of a gate report (aiact.evidence.render_html through report.html.j2): verdict,
policy hash, every check passed or breached, notes for the reviewer, figures, sections; all
text escaped, the page self-contained."""

from __future__ import annotations

import re
from pathlib import Path

from aiact import plots
from aiact.evidence import NOTES, build_report, render_html, write_report
from aiact.policy import GateResult, at_least, at_most, must_hold
from tests.browser import visible_text


def _gate(passed_ece: bool = True) -> GateResult:
    return GateResult(
        "evaluation",
        (
            at_least("accuracy", 0.8123, 0.7),
            at_most("expected_calibration_error", 0.03 if passed_ece else 0.12, 0.08),
            must_hold("fairness_declared[sex]", True, "limits from <policy> & co"),
        ),
    )


def _rows(page: str) -> dict[str, str]:
    """Check name -> the verdict cell of its row."""
    return dict(
        re.findall(
            r"<tr class=\"\w+\">\s*<td><code>([^<]+)</code></td>.*?"
            r"<td class=\"\w+\">(PASSED|BREACHED)</td>",
            page,
            flags=re.DOTALL,
        )
    )


def test_breached_gate_shows_verdict_each_check_and_the_policy_hash() -> None:
    report = build_report(
        "Model evaluation report",
        _gate(passed_ece=False),
        {"performance": {"accuracy": 0.81234567, "rows": 600}, "confusion_matrix": [[1, 2]]},
        policy_sha256="ab" * 32,
    )
    page = render_html(report)
    assert "Gate evaluation: BREACHED" in page
    assert "Breached: expected_calibration_error</p>" in page
    assert f"<code>{'ab' * 32}</code>" in page
    assert _rows(page) == {
        "accuracy": "PASSED",
        "expected_calibration_error": "BREACHED",
        "fairness_declared[sex]": "PASSED",
    }
    assert "limits from &lt;policy&gt; &amp; co" in page  # escaped, never markup
    assert "<th>accuracy</th><td>0.8123</td>" in page  # a flat section is a table, 4 digits
    assert "<pre>[\n [\n  1,\n  2\n ]\n]</pre>" in page  # nested data as JSON
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")


def test_passed_gate_notes_and_figures() -> None:
    figure = plots.grouped_bars(["a"], {"x": [0.5]}, "a figure <caption>")
    report = build_report(
        "Model evaluation report",
        _gate(),
        {NOTES: ["drift against production not assessed"], "other": 3},
        policy_sha256="cd" * 32,
    )
    page = render_html(report, [figure])
    assert "Gate evaluation: PASSED" in page and "Breached:" not in page
    assert set(_rows(page).values()) == {"PASSED"}
    assert "Notes for the reviewer" in page
    assert '<li class="warn">drift against production not assessed</li>' in page
    assert f"<h2>{NOTES}</h2>" not in page  # shown as notes, not again as a section
    assert figure in page  # embedded as markup, not escaped
    assert "a figure &lt;caption&gt;" in page


def test_report_without_gate_has_no_verdict() -> None:
    page = render_html(build_report("Training report", None, {"epochs_run": 4}))
    assert "<h1>Training report</h1>" in page
    assert "Gate" not in page and "Checks" not in page
    assert "<th>epochs_run</th><td>4</td>" in page


def test_browser_shows_the_verdict_and_breached_check(tmp_path: Path) -> None:
    report = build_report(
        "Model evaluation report",
        _gate(passed_ece=False),
        {NOTES: ["a note"]},
        policy_sha256="ef" * 32,
    )
    write_report(tmp_path / "r.json", tmp_path / "r.html", report)
    text = visible_text(tmp_path / "r.html")
    assert "Gate evaluation: BREACHED" in text
    assert re.search(r"expected_calibration_error 0\.12 <= 0\.08 BREACHED", text), text
    assert re.search(r"accuracy 0\.8123 >= 0\.7 PASSED", text), text
    assert "Notes for the reviewer a note" in text
