"""The model card registration registers and the approval review page the approval stage
renders before it raises its request, on one real run of every stage (tests/chain.py), read
back as an approver sees them: in headless Chromium, through `aiact approvals`, and re-hashed
by the chain-of-custody verifier."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiact import cli, lineage
from aiact.approval import APPROVED, Decision, backend_from_uri
from aiact.custody import CustodyError, verify_model
from aiact.hashing import sha256_path
from aiact.lineage import LineageStore, RunInfo, properties_of
from aiact.model_card import MODEL_CARD, MODEL_CARD_PAGE
from aiact.review_page import REVIEW_PAGE, ReviewPageError, fetch_verified, group_confusion
from aiact.usecase import BUNDLED_USE_CASE
from components.approval.core import utc_now
from tests.browser import visible_text
from tests.chain import Chain, approval_stage_pending, record_chain


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    """One development run through approval (a demo decision), every stage real."""
    root = tmp_path_factory.mktemp("review")
    run = Chain(root=root, metadata_uri=f"sqlite://{root / 'mlmd.sqlite'}", run_id="review-run")
    run.through_integration()
    run.approve(demo_approver="dana")
    return run


def _outputs(chain: Chain, stage: str) -> dict[str, Any]:
    """The MLMD output artefacts of the run's `stage` execution, by role."""
    from aiact.custody import Verifier

    store = LineageStore.connect(chain.metadata_uri)
    with Verifier(store, rehash=False) as verifier:
        (link,) = [
            link
            for link in verifier.links_of_run(chain.run_id)
            if link.stage == stage and link.state == "COMPLETE"
        ]
        return dict(link.outputs)


def _text(path: Path) -> str:
    return visible_text(path)


def test_the_model_card_is_a_registered_artefact(chain: Chain) -> None:
    """Registration writes the card (JSON + HTML) and records both as its outputs with their
    content hashes; the registration record cites the card; every field comes from the records
    it names."""
    outputs = _outputs(chain, "registration")
    card_path = chain.paths["registration"].with_name("model_card.json")
    page_path = chain.paths["registration"].with_name("model_card.html")
    card_artifact, page_artifact = outputs["model_card"], outputs["model_card_html"]
    store = LineageStore.connect(chain.metadata_uri)
    types = {t.id: t.name for t in store.store.get_artifact_types()}
    assert (types[card_artifact.type_id], types[page_artifact.type_id]) == (
        MODEL_CARD,
        MODEL_CARD_PAGE,
    )
    assert card_artifact.name == sha256_path(card_path) and card_artifact.uri == str(card_path)
    assert page_artifact.name == sha256_path(page_path)
    assert properties_of(page_artifact)["model_card_sha256"] == card_artifact.name
    registration = chain.document("registration")
    assert registration["model_card_sha256"] == card_artifact.name

    card = json.loads(card_path.read_text())
    report = chain.document("evaluation_report")
    declared = yaml.safe_load((BUNDLED_USE_CASE / "usecase.yaml").read_text())["intended_use"]
    data_card = yaml.safe_load((chain.paths["dataset"] / "data_card.yaml").read_text())
    dataset = store.require_artifact(lineage.DATASET, registration["dataset_sha256"])
    model = card["model"]
    assert (model["sha256"], model["version"], model["name"]) == (
        registration["model_sha256"],
        registration["model_version"],
        "credit-scoring",
    )
    assert model["code_commit"] == registration["code_commit"] != ""
    assert model["pipeline_run_id"] == chain.run_id
    assert card["intended_use"]["purpose"] == declared["purpose"]
    assert card["intended_use"]["users"] == declared["users"]
    assert card["intended_use"]["affected_persons"] == declared["affected_persons"]
    limitations = [item["text"] for item in card["limitations"]]
    assert declared["limitations"][0] in limitations
    assert data_card["known_limitations"][0] in limitations
    training = card["training_data"]
    assert training["dataset_sha256"] == registration["dataset_sha256"]
    assert training["rows"] == properties_of(dataset)["rows"]
    assert training["data_card"]["licence"] == data_card["licence"]
    assert training["data_card_sha256"] == sha256_path(chain.paths["dataset"] / "data_card.yaml")
    evaluation = card["evaluation"]
    assert evaluation["report_sha256"] == registration["evaluation_report_sha256"]
    assert evaluation["performance"] == report["sections"]["performance"]
    female = report["sections"]["fairness"]["sex"]["by_group"]["female"]
    assert (
        evaluation["fairness"]["sex"]["by_group"]["female"]["selection_rate"]
        == (female["selection_rate"])
    )
    oversight = card["human_oversight"]
    assert oversight["required_approvals"] == 1 and oversight["approver_group"] == "aiact-approvers"
    assert oversight["acknowledgements_required"] == []

    shown = _text(page_path)
    assert f"Model card: credit-scoring {registration['model_version']}" in shown
    assert declared["purpose"] in shown
    assert f"{training['rows']} rows" in shown
    assert f"accuracy {report['sections']['performance']['accuracy']:.4f}" in shown


def test_the_review_page_of_a_passing_run(chain: Chain) -> None:
    """The page the approval stage rendered, as Chromium shows it: the model, every gate's
    verdict, per-group figures equal to the evaluation report's, and the commands to decide."""
    approval = chain.document("approval")
    request = approval["request"]
    page = chain.paths["approval"].with_name("review_page.html")
    shown = _text(page)
    report = chain.document("evaluation_report")
    sections = report["sections"]
    assert f"Approval review: credit-scoring {request['model_sha256'][:16]}" in shown
    for gate in ("Data validation", "Feature checks", "Evaluation", "Integration tests"):
        assert re.search(rf"{gate} passed \d+ / \d+ none", shown), gate
    # The model card, embedded.
    declared = yaml.safe_load((BUNDLED_USE_CASE / "usecase.yaml").read_text())["intended_use"]
    assert declared["purpose"] in shown
    # Per-group figures: the evaluation report's own numbers, to four decimals.
    for attribute, found in sections["fairness"].items():
        for group, rates in found["by_group"].items():
            row = (
                f"{attribute}={group} {int(rates['count'])} {rates['positives']} "
                f"{rates['negatives']} {rates['selection_rate']:.4f} "
                f"{rates['true_positive_rate']:.4f} {rates['false_positive_rate']:.4f} "
                f"{rates['accuracy']:.4f}"
            )
            assert row in shown, row
            [[tn, fp], [fn, tp]] = group_confusion(rates) or [[-1, -1], [-1, -1]]
            assert (tn + fp, fn + tp) == (rates["negatives"], rates["positives"])
            assert tp / rates["positives"] == pytest.approx(rates["true_positive_rate"])
            assert f"{attribute}={group} pred. 0 pred. 1 actual 0 {tn} {fp} actual 1 {fn} {tp}" in (
                shown
            )
        interval = found["confidence_intervals"]["demographic_parity_difference"]
        assert (
            f"demographic parity difference {found['demographic_parity_difference']:.4f} "
            f"[{interval['low']:.4f}, {interval['high']:.4f}]"
        ) in shown
    ece = sections["calibration"]["expected_calibration_error"]
    assert f"Expected calibration error {ece:.4f}" in shown
    assert "Reliability curve of the holdout" in shown
    # The ROC curve when the report keeps its points, else the operating point and the AUC.
    assert re.search(rf"AUC (= )?{sections['performance']['roc_auc']:.4f}", shown)
    assert "no production model" in shown
    backend = f"local:{chain.root / 'approvals'}"
    assert f"aiact approve {request['name']} --approvals {backend} --reason 'REASON'" in shown
    assert f"aiact reject {request['name']} --approvals {backend} --reason 'REASON'" in shown
    assert f"aiact approvals --review {request['name']} --approvals {backend} --out DIR" in shown
    assert "No finding needs an explicit acknowledgement." in shown
    assert request["policy_sha256"] in shown
    # No script, no external resource: the page opens offline.
    html = page.read_text()
    assert "<script" not in html and not re.search(r"""(src|href)=["']?https?:""", html)


def test_the_request_names_the_page_and_custody_rehashes_it(chain: Chain) -> None:
    """The request (as the backend holds it) names the page's URI and hash; MLMD records the
    page as the approval stage's output; a page changed afterwards breaks the chain."""
    approval = chain.document("approval")
    name = approval["request"]["name"]
    page = chain.paths["approval"].with_name("review_page.html")
    held = backend_from_uri(f"local:{chain.root / 'approvals'}").request(name)
    assert (held.review_page_uri, held.review_page_sha256) == (str(page), sha256_path(page))
    assert approval["request"]["review_page_sha256"] == held.review_page_sha256
    recorded = _outputs(chain, "approval")["review_page"]
    store = LineageStore.connect(chain.metadata_uri)
    assert {t.id: t.name for t in store.store.get_artifact_types()}[recorded.type_id] == (
        REVIEW_PAGE
    )
    assert recorded.name == held.review_page_sha256
    model = approval["request"]["model_sha256"]
    verify_model(store, model, run_id=chain.run_id, through="approval")
    original = page.read_bytes()
    try:
        page.write_bytes(original.replace(b"credit-scoring", b"credit-scorinG", 1))
        with pytest.raises(CustodyError, match=r"ApprovalReviewPage .* was altered"):
            verify_model(store, model, run_id=chain.run_id, through="approval")
    finally:
        page.write_bytes(original)


def test_approvals_lists_the_page_and_refuses_a_tampered_one(
    tmp_path: Path, sqlite_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """While a request is pending, `aiact approvals` names its review page; `--review NAME
    --out DIR` writes the page only when it hashes to the request's sha256, else one line."""
    run = RunInfo(run_id="listing-run", environment="development")
    paths = record_chain(sqlite_uri, run, tmp_path / "upstream")
    approvals = f"local:{tmp_path / 'approvals'}"
    arguments: dict[str, Any] = {
        "metadata_uri": sqlite_uri,
        "backend_uri": approvals,
        "model_name": "credit-scoring",
        "model_dir": paths["model"],
        "model_uri": str(paths["model"]),
        "evaluation_report_path": paths["evaluation_report"],
        "evaluation_report_uri": str(paths["evaluation_report"]),
        "integration_report_path": paths["integration_report"],
        "integration_report_uri": str(paths["integration_report"]),
        "integration_verdict_path": paths["integration_testing_verdict"],
        "integration_verdict_uri": str(paths["integration_testing_verdict"]),
        "requested_by": "ci",
        "approver_group": "",
        "demo_approver": "",
        "timeout_s": 30.0,
        "approval_path": tmp_path / "out" / "approval.json",
        "approval_uri": str(tmp_path / "out" / "approval.json"),
        "review_page_path": tmp_path / "out" / "review_page.html",
        "review_page_uri": str(tmp_path / "out" / "review_page.html"),
    }
    backend = backend_from_uri(approvals)
    with approval_stage_pending(backend, "listing-run", arguments, join_s=30) as (
        stage,
        outcome,
        request,
    ):
        try:
            page = arguments["review_page_path"]
            assert request.review_page_sha256 == sha256_path(page)
            capsys.readouterr()
            assert cli.main(["approvals", "--approvals", approvals]) == 0
            listed = capsys.readouterr().out
            sha256 = request.review_page_sha256
            assert f"review page:        {page.as_uri()} (sha256 {sha256[:12]}" in listed
            assert f"aiact approvals --review {request.name} --approvals {approvals} --out DIR" in (
                listed
            )
            # No model card in this hand-made chain: the page says so.
            assert "No model card was registered in this run" in _text(page)

            fetched = tmp_path / "fetched"
            assert cli.main(["approvals", "--review", request.name, "--approvals", approvals,
                             "--out", str(fetched)]) == 0  # fmt: skip
            said = capsys.readouterr().out
            copy = fetched / f"{request.name}.html"
            assert copy.read_bytes() == page.read_bytes()
            assert f"review page verified (sha256 {request.review_page_sha256})" in said
            assert copy.resolve().as_uri() in said

            page.write_text(
                page.read_text().replace("Decide", "Decide (approve, nothing to see)", 1)
            )
            elsewhere = tmp_path / "tampered"
            code = cli.main(
                [
                    "approvals",
                    "--review",
                    request.name,
                    "--approvals",
                    approvals,
                    "--out",
                    str(elsewhere),
                ]
            )
            error = capsys.readouterr().err
            assert code == 2
            assert error.count("\n") == 1 and f"review page of {request.name!r}" in error
            assert f"not the request's {request.review_page_sha256[:12]}" in error
            assert not (elsewhere / f"{request.name}.html").exists()
            assert cli.main(["approvals", "--review", request.name, "--approvals", approvals]) == 2
            assert "needs --out DIR" in capsys.readouterr().err
        finally:
            if stage.is_alive() and backend.pending():
                decision = Decision(APPROVED, "alice", "ok", utc_now())
                backend.decide(backend.pending()[0].name, decision)
    assert outcome["approvals"] == 1


def test_fetch_refuses_a_request_without_a_page(tmp_path: Path) -> None:
    with pytest.raises(ReviewPageError, match="names no review page"):
        fetch_verified("", "", tmp_path, "old-request")
    with pytest.raises(ReviewPageError, match="does not exist"):
        fetch_verified(str(tmp_path / "gone.html"), "a" * 64, tmp_path, "gone")


def test_deployment_compares_the_review_page_with_the_backend(chain: Chain) -> None:
    """Deployment re-reads the request from the approval backend and compares all of it with
    the approval artefact: a request whose review page was swapped in the backend is refused."""
    from aiact.deployer.authorise import live_approval

    document = chain.document("approval")
    backend = f"local:{chain.root / 'approvals'}"
    live_approval(backend, document)
    stored = chain.root / "approvals" / f"{document['request']['name']}.json"
    original = stored.read_text()
    try:
        swapped = json.loads(original)
        swapped["request"]["review_page_sha256"] = "0" * 64
        stored.write_text(json.dumps(swapped))
        with pytest.raises(RuntimeError, match="differs from the request held by"):
            live_approval(backend, document)
    finally:
        stored.write_text(original)
