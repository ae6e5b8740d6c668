"""A production run whose evaluation leaves a finding every approver must acknowledge: the
approval stage (real, every upstream stage real, tests/chain.py) renders the review page,
raises a ModelApproval naming it on the emulated Kubernetes API (tests/aiact/k8s_emulator.py,
which checks every write against the CRD's schema and rules and the admission policies), and
the commands the page prints, run as they stand, decide the request."""

from __future__ import annotations

import copy
import shlex
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from aiact import cli
from aiact.hashing import sha256_path
from aiact.platform import NAMESPACE_ENV, PLATFORM_CONFIG_ENV
from aiact.policy import load_policy
from aiact.review_page import fetch_verified
from tests.aiact.k8s_emulator import (
    BACKEND_URI,
    NAMESPACE,
    PIPELINE,
    PRODUCTION_PLATFORM,
    EmulatedApiServer,
    until,
)
from tests.browser import visible_text
from tests.chain import Chain

APPROVERS = ("alice@example.com", "bob@example.com")
FINDING = "insufficient_data[age_band]"


def _run_printed(command: str, reason: str) -> int:
    """Run an `aiact ...` command exactly as the page prints it, with the reason filled in."""
    argv = shlex.split(command.replace("'REASON'", shlex.quote(reason)))
    assert argv[0] == "aiact"
    return cli.main(argv[1:])


def test_a_request_that_needs_acknowledgements(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    api: EmulatedApiServer,
    act_as: Callable[[str], Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    platform = tmp_path / "platform.yaml"
    platform.write_text(PRODUCTION_PLATFORM)
    monkeypatch.setenv(PLATFORM_CONFIG_ENV, str(platform))
    monkeypatch.setenv(NAMESPACE_ENV, NAMESPACE)
    policy = copy.deepcopy(load_policy())
    # Stricter than the bundled 30: the holdout's age band 61+ (about 36 rows) is too small to
    # conclude on, which a production evaluation passes only as a finding to acknowledge.
    policy["evaluation"]["fairness_min_group_size"] = 60
    chain = Chain(
        root=tmp_path / "run",
        metadata_uri=f"sqlite://{tmp_path / 'mlmd.sqlite'}",
        run_id="prod-review-run",
        environment="production",
        policy=policy,
    )
    chain.through_integration()
    assert FINDING in [
        c["name"] for c in chain.document("evaluation_report")["gate"]["checks"] if c["passed"]
    ]

    act_as(PIPELINE)
    failure: list[BaseException] = []

    def approve() -> None:
        try:
            chain.approve(demo_approver="", backend=BACKEND_URI, timeout_s=120)
        except BaseException as exc:  # reported by the test below
            failure.append(exc)

    stage = threading.Thread(target=approve, daemon=True)
    stage.start()
    try:
        (name,) = until(
            lambda: api.objects(NAMESPACE), "the ModelApproval", timeout_s=60, interval_s=0.05
        )
        spec = api.objects(NAMESPACE)[name]["spec"]
        page = chain.out("review_page.html")
        assert spec["acknowledgementsRequired"] == [FINDING]
        assert spec["reviewPage"] == {"uri": str(page), "sha256": sha256_path(page)}
        shown = visible_text(page)
        assert "Every approving decision must acknowledge 1 finding(s):" in shown
        small = chain.document("evaluation_report")["sections"]["fairness"]["age_band"]
        assert f"{FINDING} : age_band=61+ has {small['group_sizes']['61+']} rows" in shown
        approve_command = (
            f"aiact approve {name} --approvals {BACKEND_URI} --acknowledge '{FINDING}' "
            "--reason 'REASON'"
        )
        assert approve_command in shown
        assert (
            f"kubectl aiact approve {name} -n {NAMESPACE} --acknowledge '{FINDING}' "
            "--reason 'REASON'"
        ) in shown
        assert f"kubectl get modelapproval {name} -n {NAMESPACE} -o yaml" in shown
        assert "2 distinct member(s) of group aiact-approvers" in shown
        assert "environment production" in shown
        assert "Too few holdout rows (under 60) to conclude for: 61+" in shown

        # The approver fetches and verifies the page the request names.
        act_as(APPROVERS[0])
        mine = fetch_verified(
            spec["reviewPage"]["uri"], spec["reviewPage"]["sha256"], tmp_path / "mine", name
        )
        assert mine.read_bytes() == page.read_bytes()
        capsys.readouterr()
        assert cli.main(["approvals", "--approvals", BACKEND_URI]) == 0
        assert f"review page:        {page.as_uri()}" in capsys.readouterr().out

        # The printed command without its acknowledgement is refused; as printed, it decides.
        bare = approve_command.replace(f" --acknowledge '{FINDING}'", "")
        assert _run_printed(bare, "evaluation reviewed") == 2
        assert f"needs every approver to acknowledge {FINDING}" in capsys.readouterr().err
        for approver in APPROVERS:
            act_as(approver)
            assert _run_printed(approve_command, f"{approver}: reviewed the page") == 0
    finally:
        stage.join(60)
    assert not stage.is_alive() and not failure, failure
    decisions = chain.document("approval")["decisions"]
    assert [d["approver"] for d in decisions] == list(APPROVERS)
    assert all(d["acknowledged"] == [FINDING] for d in decisions)
    assert chain.document("approval")["request"]["review_page_sha256"] == sha256_path(page)
