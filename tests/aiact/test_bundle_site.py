"""The evidence bundle as a browsable static site, built from genuine runs (tests/chain.py): a
deployed run and one whose evaluation gate failed (an undertrained model). The index is
rendered in headless Chromium and the tests assert on what a reader sees; the bundle's
SHA256SUMS is checked with GNU sha256sum itself, and tampering is found by `--verify`."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from aiact import cli, lineage
from aiact.bundle import (
    ARTICLES,
    KNOWN_SUFFIXES,
    BundleError,
    extension_for,
    stage_verdict,
    verify_bundle,
    write_bundle,
)
from aiact.evidence import write_json
from aiact.hashing import sha256_file, sha256_path
from aiact.lineage import ArtifactRecord, LineageStore, RunInfo
from aiact.policy import GateFailed, load_policy
from tests.browser import visible_text
from tests.chain import UNDERTRAINED, Chain, record_upstream


@dataclass
class Runs:
    root: Path
    uri: str
    good: Chain
    bad: Chain
    good_bundle: Path
    bad_bundle: Path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("bundle")
    uri = f"sqlite://{root / 'mlmd.sqlite'}"
    good = Chain(root, uri, "good").through_integration()
    good.approve()
    good.deploy()
    bad = Chain(root, uri, "bad", data_seed=8, hyperparameters=UNDERTRAINED)
    bad.prepare()
    bad.engineer()
    bad.train()
    with contextlib.suppress(GateFailed):  # the gate halts the run (older records: by raising)
        bad.evaluate()
    store = LineageStore.connect(uri)
    write_bundle(store, "good", root / "bundles" / "good")
    write_bundle(store, "bad", root / "bundles" / "bad")
    return Runs(root, uri, good, bad, root / "bundles" / "good", root / "bundles" / "bad")


def _sums(bundle: Path) -> dict[str, str]:
    lines = (bundle / "SHA256SUMS").read_text().splitlines()
    return {line[66:]: line[:64] for line in lines}


def _copy_of(bundle: Path, type_name: str, digest: str, suffix: str = ".json") -> Path:
    return bundle / "evidence" / f"{type_name.removeprefix('aiact.')}-{digest[:16]}{suffix}"


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.links.append(value)


def _links(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text())
    return parser


# -- the index ----------------------------------------------------------------------------


def test_the_index_shows_custody_articles_stage_verdicts_and_every_hash(runs: Runs) -> None:
    bundle = runs.good_bundle
    text = visible_text(bundle / "index.html")
    assert "Chain of custody: VERIFIED through deployment" in text
    assert "Run outcome: DEPLOYED" in text
    # The custody verdict comes first, before any article.
    assert text.index("Chain of custody:") < text.index("Art. 9:")
    for article, (title, _) in ARTICLES.items():
        assert f"{article}: {title.partition(': ')[0]}" in text
    assert "Art. 13: Transparency" in text and "Art. 15: Accuracy, robustness and cyber" in text
    # Every stage's verdict, as recorded.
    for stage in ("data_preparation", "evaluation", "integration_testing"):
        assert re.search(rf"\b{stage} \d+ COMPLETE PASSED\b", text), stage
    assert re.search(r"\bdeployment \d+ COMPLETE completed\b", text)
    # The evaluation report: its copy, hashed here independently, equals the report the stage
    # wrote, and the index shows that hash beside the file's name.
    report = runs.good.paths["evaluation_report"]
    digest = sha256_file(report)
    copy = _copy_of(bundle, lineage.EVALUATION_REPORT, digest)
    assert copy.read_bytes() == report.read_bytes()
    assert f"evidence/{copy.name} sha256 {digest}" in text
    # The human decision (Art. 14) with the approver the run recorded.
    assert "approver: demo:dana" in text
    # Every file of the bundle (but the index itself) is listed with its sha256.
    sums = _sums(bundle)
    assert len(sums) > 20
    for name, file_digest in sums.items():
        if name != "index.html":
            assert f"{name} " in text and file_digest in text, name


def test_every_link_of_the_index_opens_a_bundled_file(runs: Runs) -> None:
    parser = _links(runs.good_bundle / "index.html")
    assert "script" not in parser.tags and "link" not in parser.tags
    files = [link for link in parser.links if not link.startswith("#")]
    assert files and not [link for link in files if re.match(r"^[a-z]+:", link)]
    for link in files:
        assert (runs.good_bundle / link).is_file(), link
    assert "evidence/RawDataset-" in " ".join(files)


def test_files_have_proper_extensions_and_folders_keep_their_names(runs: Runs) -> None:
    bundle = runs.good_bundle
    evidence = bundle / "evidence"
    top = sorted(p for p in evidence.iterdir() if p.is_file())
    assert top and all(p.suffix in KNOWN_SUFFIXES for p in top), [p.name for p in top]
    for report in ("evaluation_report", "integration_report", "registration", "approval"):
        source = runs.good.paths[report]
        [copy] = [p for p in top if sha256_file(p) == sha256_file(source)]
        assert copy.suffix == ".json" and json.loads(copy.read_text()) == runs.good.document(report)
    assert any(p.name.startswith("DataCard-") and p.suffix == ".yaml" for p in top)
    assert any(p.name.startswith("RawDataset-") and p.suffix == ".csv" for p in top)
    dataset = runs.good.paths["dataset"]
    [copied] = [p for p in evidence.iterdir() if p.is_dir() and p.name.startswith("Dataset-")]
    assert sorted(p.name for p in copied.iterdir()) == sorted(p.name for p in dataset.iterdir())
    assert (copied / "schema.pbtxt").read_bytes() == (dataset / "schema.pbtxt").read_bytes()
    assert sha256_path(copied) == sha256_path(dataset)
    [model] = [p for p in evidence.iterdir() if p.is_dir() and p.name.startswith("Model-")]
    assert (model / "weights.pt").read_bytes() == (
        runs.good.paths["model"] / "weights.pt"
    ).read_bytes()


def test_extensions_are_chosen_by_content_when_a_file_has_none(tmp_path: Path) -> None:
    cases = {
        "report": (b'{"gate": {"passed": true}}\n', ".json"),
        "page": (b"<!doctype html><html><body>x</body></html>", ".html"),
        "notes": (b"name: value\n", ".txt"),
        "weights": (bytes(range(256)), ".bin"),
        "almost-json": (b"{not json", ".txt"),
        "data.csv": (b"a,b\n1,2\n", ".csv"),
    }
    for name, (content, suffix) in cases.items():
        (tmp_path / name).write_bytes(content)
        assert extension_for(tmp_path / name) == suffix, name


def test_each_json_report_has_an_html_view(runs: Runs) -> None:
    bundle = runs.good_bundle
    report = runs.good.document("evaluation_report")
    digest = sha256_file(runs.good.paths["evaluation_report"])
    view = bundle / "views" / f"EvaluationReport-{digest[:16]}.html"
    text = visible_text(view)
    assert "Gate evaluation: PASSED" in text
    for check in report["gate"]["checks"]:
        assert check["name"] in text
    assert "evidence bundle index" in text and digest in text
    links = _links(view).links
    assert "../index.html" in links and f"../evidence/{view.stem}.json" in links
    approval = visible_text(
        bundle / "views" / f"Approval-{sha256_file(runs.good.paths['approval'])[:16]}.html"
    )
    assert "demo:dana" in approval
    json_copies = {p.stem for p in (bundle / "evidence").glob("*.json")}
    assert json_copies == {p.stem for p in (bundle / "views").glob("*.html")}


# -- a failed gate ------------------------------------------------------------------------


def test_a_run_whose_evaluation_gate_failed_shows_it_failed(runs: Runs) -> None:
    report = runs.bad.document("evaluation_report")
    assert report["gate"]["passed"] is False  # the starting point is real
    breached = [c["name"] for c in report["gate"]["checks"] if not c["passed"]]
    text = visible_text(runs.bad_bundle / "index.html")
    assert "Chain of custody: NOT VERIFIED" in text
    assert "Run outcome: HALTED at evaluation: gate breached" in text
    assert re.search(r"\bevaluation \d+ (FAILED|COMPLETE) FAILED: gate breached\b", text)
    for name in breached:
        assert name in text
    assert "No record of: aiact.Deployment" in text and "No record of: aiact.Approval" in text
    digest = sha256_file(runs.bad.paths["evaluation_report"])
    assert f"evidence/EvaluationReport-{digest[:16]}.json sha256 {digest}" in text
    view = visible_text(runs.bad_bundle / "views" / f"EvaluationReport-{digest[:16]}.html")
    assert "Gate evaluation: FAILED" in view and "BREACH" in view
    manifest = json.loads((runs.bad_bundle / "manifest.json").read_text())
    [evaluation] = [r for r in manifest["records"] if r["type"] == lineage.EVALUATION_REPORT]
    assert evaluation["verdict"] == "failed"


def _hand_made_upstream(tmp_path: Path, run_id: str) -> tuple[str, RunInfo]:
    """A fresh SQLite store under `tmp_path` with the upstream records of run `run_id`
    (record_upstream over a hand-made feature set and model); its URI and the run."""
    uri = f"sqlite://{tmp_path / 'mlmd.sqlite'}"
    run = RunInfo(run_id=run_id, pipeline_name="test", environment="development")
    features, model = tmp_path / "features", tmp_path / "model"
    features.mkdir()
    (features / "test.csv").write_text("x\n1\n")
    model.mkdir()
    (model / "weights.pt").write_bytes(b"weights")
    record_upstream(uri, run, features, model, load_policy())
    return uri, run


def test_the_gate_representation_with_a_verdict_execution_reads_as_failed(
    tmp_path: Path,
) -> None:
    """A gate whose evidence execution COMPLETED with verdict `breached`, and whose separate
    verdict execution FAILED the run, is shown failed (the records written by hand here, as
    the gate stages write them)."""
    uri, run = _hand_made_upstream(tmp_path, "verdicts")
    report = tmp_path / "evaluation_report.json"
    write_json(
        report,
        {
            "title": "evaluation",
            "gate": {
                "gate": "evaluation",
                "passed": False,
                "checks": [
                    {
                        "name": "accuracy",
                        "value": 0.41,
                        "comparison": ">=",
                        "limit": 0.7,
                        "passed": False,
                        "detail": "",
                    }
                ],
            },
            "sections": {},
        },
    )
    record = ArtifactRecord(
        lineage.EVALUATION_REPORT,
        str(report),
        sha256_path(report),
        "evaluation_report",
        {"passed": False},
    )
    store = LineageStore.connect(uri)
    store.record_execution(
        run=run,
        stage="evaluation",
        inputs=[],
        outputs=[record],
        succeeded=True,
        properties={"outcome": "completed", "verdict": "breached", "gate_breaches": "accuracy"},
    )
    store.record_execution(
        run=run,
        stage="evaluation_verdict",
        inputs=[record],
        outputs=[],
        succeeded=False,
        properties={
            "outcome": "GateFailed",
            "verdict": "breached",
            "gate_breaches": "accuracy",
            "error": "gate 'evaluation' failed: accuracy=0.41 (limit >= 0.7) BREACH",
        },
    )
    bundle = tmp_path / "bundle"
    manifest = write_bundle(store, "verdicts", bundle)
    verdicts = {e["stage"]: (e["state"], e["verdict"]) for e in manifest["executions"]}
    assert verdicts["evaluation"] == ("COMPLETE", "breached")
    assert verdicts["evaluation_verdict"] == ("FAILED", "breached")
    text = visible_text(bundle / "index.html")
    assert "Run outcome: HALTED at evaluation: gate breached (accuracy)" in text
    assert re.search(r"\bevaluation \d+ COMPLETE FAILED: gate breached accuracy\b", text)
    assert re.search(r"\bevaluation_verdict \d+ FAILED FAILED: gate breached\b", text)
    assert "Chain of custody: NOT VERIFIED" in text


def test_a_model_card_and_its_page_are_shown_under_articles_11_and_13(tmp_path: Path) -> None:
    """Newer artefacts (a model card and its HTML page, written by registration), here with
    KFP-style file names without extension: mapped when present, typed by their content, the
    card's view linking the stage's own page."""
    uri, run = _hand_made_upstream(tmp_path, "card")
    card, page = tmp_path / "model_card", tmp_path / "model_card_html"
    write_json(card, {"schema": "aiact-model-card/1", "intended_use": "credit pre-screening"})
    page.write_text("<!doctype html><html><body><h1>Model card: credit-scoring</h1></body></html>")
    outputs = [
        ArtifactRecord("aiact.ModelCard", str(card), sha256_path(card), "model_card"),
        ArtifactRecord("aiact.ModelCardPage", str(page), sha256_path(page), "model_card_html"),
    ]
    store = LineageStore.connect(uri)
    store.record_execution(
        run=run,
        stage="registration",
        inputs=[],
        outputs=outputs,
        succeeded=True,
        properties={"outcome": "completed"},
    )
    bundle = tmp_path / "bundle"
    manifest = write_bundle(store, "card", bundle)
    for article in ("Art. 11 / Annex IV", "Art. 13"):
        types = {r["type"] for r in manifest["articles"][article]["evidence"]}
        assert {"aiact.ModelCard", "aiact.ModelCardPage"} <= types, article
        assert "aiact.ModelCard" not in manifest["articles"][article]["missing"]
    [json_copy] = (bundle / "evidence").glob("ModelCard-*.json")
    [html_copy] = (bundle / "evidence").glob("ModelCardPage-*.html")
    assert json_copy.read_bytes() == card.read_bytes()
    assert html_copy.read_bytes() == page.read_bytes()
    view = bundle / "views" / f"{json_copy.stem}.html"
    assert f"../evidence/{html_copy.name}" in _links(view).links
    assert "credit pre-screening" in visible_text(view)
    text = visible_text(bundle / "index.html")
    assert re.search(r"Art\. 13: Transparency.*aiact\.ModelCard version", text)
    assert f"{html_copy.relative_to(bundle).as_posix()} sha256 {sha256_file(page)}" in text
    assert verify_bundle(bundle)["files"] == len(_sums(bundle))


@pytest.mark.parametrize(
    ("stage", "state", "props", "verdict"),
    [
        ("evaluation", "COMPLETE", {"verdict": "passed"}, "passed"),
        ("evaluation", "COMPLETE", {"verdict": "breached", "gate_breaches": "f1"}, "breached"),
        ("evaluation", "FAILED", {"outcome": "GateFailed", "gate_breaches": "f1"}, "breached"),
        ("evaluation", "COMPLETE", {"outcome": "completed"}, "passed"),
        ("training", "COMPLETE", {"outcome": "completed"}, "completed"),
        ("approval", "FAILED", {"outcome": "ApprovalRejected"}, "failed"),
        ("evaluation_verdict", "COMPLETE", {"verdict": "passed"}, "passed"),
        ("deployment", "RUNNING", {}, "running"),
    ],
)
def test_stage_verdicts_read_both_gate_representations(
    stage: str, state: str, props: dict[str, Any], verdict: str
) -> None:
    assert stage_verdict(stage, state, props) == verdict


# -- SHA256SUMS and --verify --------------------------------------------------------------


def test_sha256sum_checks_the_bundle_and_verify_passes(
    runs: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    checked = subprocess.run(
        ["sha256sum", "--check", "--strict", "SHA256SUMS"],
        cwd=runs.good_bundle,
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count(": OK") == len(_sums(runs.good_bundle))
    assert "index.html: OK" in checked.stdout and "manifest.json: OK" in checked.stdout
    assert cli.main(["evidence-bundle", "--verify", str(runs.good_bundle)]) == 0
    assert "VERIFIED:" in capsys.readouterr().out
    assert verify_bundle(runs.bad_bundle)["run_id"] == "bad"


def _verify_fails(bundle: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert cli.main(["evidence-bundle", "--verify", str(bundle)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


def test_tampering_with_one_bundled_file_fails_verify_naming_it(
    runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(runs.good_bundle, bundle)
    digest = sha256_file(runs.good.paths["evaluation_report"])
    name = f"evidence/EvaluationReport-{digest[:16]}.json"
    target = bundle / name
    original = target.read_bytes()
    document = json.loads(original)
    document["gate"]["checks"][0]["value"] = 0.99
    target.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    checked = subprocess.run(
        ["sha256sum", "--check", "--quiet", "SHA256SUMS"],
        cwd=bundle,
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 1 and f"{name}: FAILED" in checked.stdout
    err = _verify_fails(bundle, capsys)
    assert name in err and "altered" in err
    # A consistent forgery of SHA256SUMS too is caught by the manifest's record of the file.
    forged = sha256_file(target)
    sums = (bundle / "SHA256SUMS").read_text().replace(f"{digest}  {name}", f"{forged}  {name}")
    (bundle / "SHA256SUMS").write_text(sums)
    err = _verify_fails(bundle, capsys)
    assert name in err and "manifest.json" in err
    target.write_bytes(original)
    (bundle / "SHA256SUMS").write_text((runs.good_bundle / "SHA256SUMS").read_text())
    assert cli.main(["evidence-bundle", "--verify", str(bundle)]) == 0
    # A file added, or one removed, is named too.
    (bundle / "evidence" / "extra.json").write_text("{}\n")
    assert "evidence/extra.json" in _verify_fails(bundle, capsys)
    (bundle / "evidence" / "extra.json").unlink()
    (bundle / "index.html").unlink()
    assert "index.html: listed in SHA256SUMS but missing" in _verify_fails(bundle, capsys)


def test_verify_refuses_a_folder_that_is_no_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "no SHA256SUMS" in _verify_fails(tmp_path, capsys)
    with pytest.raises(BundleError, match="line 1"):
        (tmp_path / "SHA256SUMS").write_text("not a checksum line\n")
        verify_bundle(tmp_path)


# -- the command ---------------------------------------------------------------------------


def test_the_command_writes_replaces_and_refuses(
    runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "site"
    args = ["evidence-bundle", "--run", "good", "--out", str(out), "--metadata-uri", runs.uri]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out / 'index.html'}" in printed
    assert "chain of custody: VERIFIED through deployment" in printed
    assert "Art. 13" in printed
    # Written again over the earlier bundle: replaced, nothing stale left.
    (out / "evidence" / "stale.txt").write_text("from an earlier bundle\n")
    assert cli.main(args) == 0
    assert not (out / "evidence" / "stale.txt").exists()
    assert verify_bundle(out)["run_id"] == "good"
    # A folder holding anything else is refused, untouched.
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep me\n")
    capsys.readouterr()
    code = cli.main(
        ["evidence-bundle", "--run", "good", "--out", str(other), "--metadata-uri", runs.uri]
    )
    err = capsys.readouterr().err
    assert code == 2 and "holds no evidence bundle" in err and len(err.strip().splitlines()) == 1
    assert (other / "mine.txt").read_text() == "keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes", "site"]  # no staging left
    assert cli.main(["evidence-bundle", "--out", str(out)]) == 2
    assert "needs --run ID and --out DIR" in capsys.readouterr().err
