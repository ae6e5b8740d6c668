"""The Kubernetes approval backend, the real approval stage executor and the approver CLI, run
unchanged against an HTTP emulation of the Kubernetes API (kmock's KubernetesEmulator with the
fixes in tests/aiact/k8s_emulator.py) on 127.0.0.1.

What that means: the official `kubernetes` client really talks HTTP, creates, gets, lists and
patches ModelApprovals, streams watches, gets 409 on a duplicate create or a stale
resourceVersion and 410 Gone on a compacted one, and loses connections. Every write is checked
against manifests/cluster's CRD schema, CEL rules and admission policies as evaluated by
`ClusterRules` (cel-expr-python, the same evaluator as tests/manifests/test_approval_crd.py),
with each bearer token mapped to a user and their groups; but it is not a real API server (no
RBAC, no CEL type checking or cost limits). The stage records its lineage in a real SQLite ML
Metadata store.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from aiact import cli, lineage
from aiact.approval import APPROVED, REJECTED, ApprovalError, ApprovalRequest, Decision
from aiact.approval import backend_from_uri as _backend_from_uri
from aiact.approval.kubernetes import (
    GROUP,
    PLURAL,
    VERSION,
    KubernetesApprovalBackend,
    status_of,
)
from aiact.lineage import LineageStore, RunInfo, properties_of
from aiact.platform import NAMESPACE_ENV, PLATFORM_CONFIG_ENV
from components.approval.core import ApprovalExpired, ApprovalRejected, utc_now
from components.approval.executor import run_approval
from tests.aiact.k8s_emulator import (
    APPROVER_GROUP,
    BACKEND_URI,
    NAMESPACE,
    PIPELINE,
    PRODUCTION_PLATFORM,
    EmulatedApiServer,
    until,
)
from tests.chain import record_chain

REPO = Path(__file__).resolve().parents[2]
APPROVER = "alice@example.com"
REQUESTER = "carol@example.com"
SECOND = "bob@example.com"
THIRD = "dave@example.com"


def backend_from_uri(uri: str) -> KubernetesApprovalBackend:
    """The Kubernetes backend for a URI (typed, for the tests)."""
    backend = _backend_from_uri(uri)
    assert isinstance(backend, KubernetesApprovalBackend)
    return backend


def _request(
    name: str, expiry: str = "2099-01-01T00:00:00+00:00", **fields: Any
) -> ApprovalRequest:
    values: dict[str, Any] = {
        "name": name,
        "model_name": "m",
        "model_sha256": "a" * 64,
        "evaluation_report_uri": "/r/e.html",
        "evaluation_report_sha256": "b" * 64,
        "integration_report_uri": "/r/i.json",
        "integration_report_sha256": "c" * 64,
        "pipeline_run_id": "r",
        "requested_by": REQUESTER,
        "approver_group": APPROVER_GROUP,
        "environment": "development",
        "expires_at": expiry,
        **fields,
    }
    return ApprovalRequest(**values)


@pytest.fixture
def stage_args(tmp_path: Path, sqlite_uri: str, run: RunInfo) -> dict[str, Any]:
    """Arguments of the approval stage in a development run."""
    return _stage_args(tmp_path, sqlite_uri, run)


@pytest.fixture
def production_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunInfo:
    """A production run, in a namespace the platform configuration (aiact.platform) says is
    production: its approval needs two distinct approvers."""
    path = tmp_path / "platform.yaml"
    path.write_text(PRODUCTION_PLATFORM)
    monkeypatch.setenv(PLATFORM_CONFIG_ENV, str(path))
    monkeypatch.setenv(NAMESPACE_ENV, NAMESPACE)
    return RunInfo(run_id="prod-run", pipeline_name="test", environment="production")


def _stage_args(tmp_path: Path, sqlite_uri: str, run: RunInfo) -> dict[str, Any]:
    """Arguments of the approval stage, with its upstream artefacts recorded in MLMD as the
    outputs of completed stages of `run` (the stage refuses anything else)."""
    paths = record_chain(sqlite_uri, run, tmp_path / "upstream")
    model, evaluation = paths["model"], paths["evaluation_report"]
    integration = paths["integration_report"]
    return {
        "metadata_uri": sqlite_uri,
        "backend_uri": BACKEND_URI,
        "model_name": "credit-scoring",
        "model_dir": model,
        "model_uri": "s3://aiact/model",
        "evaluation_report_path": evaluation,
        "evaluation_report_uri": "s3://aiact/evaluation_report.json",
        "integration_report_path": integration,
        "integration_report_uri": "s3://aiact/integration_report.json",
        "requested_by": REQUESTER,
        "approver_group": APPROVER_GROUP,
        "demo_approver": "",
        "timeout_s": 20.0,
        "approval_path": tmp_path / "approval.json",
        "approval_uri": "s3://aiact/approval.json",
        "integration_verdict_path": paths["integration_testing_verdict"],
        "integration_verdict_uri": "s3://aiact/integration_testing_verdict.json",
    }


class Stage(threading.Thread):
    """The approval stage running in the background, as the paused pipeline task."""

    def __init__(self, run: RunInfo, args: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.stage_run, self.args = run, args
        self.result: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.finished_at = 0.0

    def run(self) -> None:
        try:
            self.result = dict(run_approval(run=self.stage_run, **self.args))
        except BaseException as exc:
            self.error = exc
        self.finished_at = time.monotonic()

    def outcome(self) -> dict[str, Any]:
        self.join(15)
        assert not self.is_alive(), "the stage is still waiting"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def _watches(api: EmulatedApiServer) -> list[str]:
    return [since for action, since in api.emulator.served if action == "watch"]


def _start_stage(
    api: EmulatedApiServer, act_as: Callable[[str], Path], run: RunInfo, args: dict[str, Any]
) -> tuple[Stage, str]:
    """Start the stage as the pipeline's service account; return it once it watches."""
    act_as(PIPELINE)
    stage = Stage(run, args)
    stage.start()
    (name,) = until(lambda: api.objects(NAMESPACE), "the ModelApproval")
    until(lambda: _watches(api), "the stage's watch")
    return stage, name


def _cli(*argv: str) -> int:
    return cli.main([*argv, "--approvals", BACKEND_URI])


def _approval_properties(sqlite_uri: str, run_id: str) -> dict[str, Any]:
    store = LineageStore.connect(sqlite_uri)
    (approval,) = store.artifacts_of_run(run_id, lineage.APPROVAL)
    return properties_of(approval)


def test_the_review_page_round_trips_through_the_cluster(
    api: EmulatedApiServer, act_as: Callable[[str], Path]
) -> None:
    """The request's review page (URI and SHA-256) is written to spec.reviewPage, admitted by
    the CRD's schema, and read back unchanged (deployment compares the whole request)."""
    act_as(PIPELINE)
    backend = backend_from_uri(BACKEND_URI)
    request = _request(
        "with-page",
        review_page_uri="s3://aiact/runs/r/approval/review_page.html",
        review_page_sha256="d" * 64,
    )
    assert backend.ensure_request(request) == request
    assert backend.request("with-page") == request
    stored = api.objects(NAMESPACE)["with-page"]
    assert stored["spec"]["reviewPage"] == {
        "uri": "s3://aiact/runs/r/approval/review_page.html",
        "sha256": "d" * 64,
    }


def test_approve_continues_and_mlmd_records_the_decision(
    api: EmulatedApiServer,
    act_as: Callable[[str], Path],
    run: RunInfo,
    stage_args: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Against the kmock HTTP emulation (not a real API server): the pipeline creates the
    ModelApproval, a human approves with `aiact approve`, the stage resumes and MLMD holds who,
    why and when."""
    stage, name = _start_stage(api, act_as, run, stage_args)
    spec = api.objects(NAMESPACE)[name]["spec"]
    assert spec["requestedBy"] == REQUESTER and spec["model"]["name"] == "credit-scoring"
    act_as(APPROVER)
    assert _cli("approvals") == 0
    listing = capsys.readouterr().out
    assert name in listing and "evaluation report:  s3://aiact/evaluation_report.json" in listing
    assert stage.is_alive(), "the stage did not wait for the decision"
    assert _cli("approve", name, "--reason", "reviewed evaluation and integration reports") == 0
    result = stage.outcome()
    assert result["approver"] == APPROVER and result["decision"] == "approved"
    stored = _approval_properties(stage_args["metadata_uri"], run.run_id)
    assert stored["approver"] == APPROVER
    assert stored["reason"] == "reviewed evaluation and integration reports"
    assert str(stored["decided_at"]).startswith("20") and stored["kind"] == "human"
    status = api.objects(NAMESPACE)[name]["status"]
    (decision,) = status["decisions"]
    assert (decision["verdict"], decision["approver"]) == ("approved", APPROVER)
    assert (status["phase"], status["approvals"]) == ("Approved", 1)
    assert stored["required_approvals"] == 1 and stored["approvals"] == 1
    executions = LineageStore.connect(stage_args["metadata_uri"]).executions_of_run(run.run_id)
    assert executions[-1].stage == "approval" and executions[-1].state == "COMPLETE"


def test_reject_fails_naming_approver_and_reason(
    api: EmulatedApiServer,
    act_as: Callable[[str], Path],
    run: RunInfo,
    stage_args: dict[str, Any],
) -> None:
    """Against the kmock HTTP emulation (not a real API server): a rejection written with the
    kubectl plugin fails the stage with the approver and reason, recorded in MLMD."""
    stage, name = _start_stage(api, act_as, run, stage_args)
    act_as(APPROVER)
    reason = "equalized odds for age band too wide"
    assert cli.kubectl_plugin_main(["reject", name, "--reason", reason]) == 0
    with pytest.raises(ApprovalRejected, match=re.escape(f"rejected by {APPROVER}: {reason}")):
        stage.outcome()
    assert _approval_properties(stage_args["metadata_uri"], run.run_id)["reason"] == reason
    (execution,) = [
        e
        for e in LineageStore.connect(stage_args["metadata_uri"]).executions_of_run(run.run_id)
        if e.stage == "approval"
    ]
    assert execution.state == "FAILED" and APPROVER in str(execution.properties["error"])


def test_expiry_fails_the_stage(
    api: EmulatedApiServer,
    act_as: Callable[[str], Path],
    run: RunInfo,
    stage_args: dict[str, Any],
) -> None:
    """Against the kmock HTTP emulation (not a real API server): nobody decides before the
    request expires, so the stage fails and the expired request is no longer pending."""
    act_as(PIPELINE)
    with pytest.raises(ApprovalExpired, match="expired: no decision within 1 s"):
        run_approval(run=run, **{**stage_args, "timeout_s": 1.0})
    (name,) = api.objects(NAMESPACE)
    assert "status" not in api.objects(NAMESPACE)[name]
    assert backend_from_uri(BACKEND_URI).pending() == []
    act_as(APPROVER)
    assert _cli("approve", name, "--reason", "too late") == 2  # refused: expired


def test_spec_expiry_bounds_the_wait(api: EmulatedApiServer, act_as: Callable[[str], Path]) -> None:
    """Against the kmock HTTP emulation (not a real API server): the wait ends when spec.expiry
    passes, even with a longer timeout."""
    act_as(PIPELINE)
    backend = backend_from_uri(BACKEND_URI)
    assert isinstance(backend, KubernetesApprovalBackend) and backend.namespace == NAMESPACE
    expires = time.time() + 1
    expiry = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(expires + 1))
    backend.ensure_request(_request("short-lived", expiry))
    started = time.monotonic()
    assert backend.wait("short-lived", timeout_s=30) == []
    assert time.monotonic() - started < 5


def test_watch_resumes_after_a_dropped_connection(
    api: EmulatedApiServer,
    act_as: Callable[[str], Path],
    run: RunInfo,
    stage_args: dict[str, Any],
) -> None:
    """Against the kmock HTTP emulation (not a real API server): the server aborts the watch's
    TCP connection; the stage reconnects from its last resourceVersion (no re-list) and still
    sees the decision."""
    stage, name = _start_stage(api, act_as, run, stage_args)
    created = api.objects(NAMESPACE)[name]["metadata"]["resourceVersion"]
    lists = sum(1 for action, _ in api.emulator.served if action == "list")
    api.call(api.emulator.drop_watches())
    until(lambda: len(_watches(api)) >= 2, "a new watch after the drop")
    assert _watches(api)[1] == created  # resumed from the resourceVersion it had seen
    assert sum(1 for action, _ in api.emulator.served if action == "list") == lists
    act_as(APPROVER)
    assert _cli("approve", name, "--reason", "reviewed") == 0
    assert stage.outcome()["approver"] == APPROVER


def test_gone_triggers_a_relist_that_sees_the_decision(
    api: EmulatedApiServer,
    act_as: Callable[[str], Path],
    run: RunInfo,
    stage_args: dict[str, Any],
) -> None:
    """Against the kmock HTTP emulation (not a real API server): while the stage is disconnected
    the decision is written and the history compacted, so its watch resumes into 410 Gone; it
    re-lists and finds the decision there."""
    stage, name = _start_stage(api, act_as, run, stage_args)
    api.call(api.emulator.hold_watches(True))
    api.call(api.emulator.drop_watches())
    act_as(APPROVER)
    assert _cli("approve", name, "--reason", "reviewed while you were away") == 0
    api.call(api.emulator.compact())
    api.call(api.emulator.hold_watches(False))
    assert stage.outcome()["reason"] == "reviewed while you were away"
    actions = [action for action, _ in api.emulator.served]
    gone = actions.index("gone")
    assert "list" in actions[gone:], actions


def test_retried_component_reuses_its_approval(
    api: EmulatedApiServer,
    act_as: Callable[[str], Path],
    run: RunInfo,
    stage_args: dict[str, Any],
) -> None:
    """Against the kmock HTTP emulation (not a real API server): the first attempt (its own
    process) creates the approval and is killed while waiting; the retry finds it (409 on
    create) and resumes waiting on the same object."""
    kubeconfig = act_as(PIPELINE)
    first = subprocess.Popen(
        [
            sys.executable,
            "-c",
            RETRY_SCRIPT,
            json.dumps(run.__dict__),
            json.dumps(stage_args, default=str),
        ],
        cwd=REPO,
        env={**os.environ, "KUBECONFIG": str(kubeconfig), "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        (name,) = until(lambda: api.objects(NAMESPACE), "the first attempt's ModelApproval")
        until(lambda: _watches(api), "the first attempt's watch")
    finally:
        first.kill()
        first.wait(10)
    expiry = api.objects(NAMESPACE)[name]["spec"]["expiry"]
    stage = Stage(run, stage_args)
    stage.start()
    until(lambda: len(_watches(api)) >= 2, "the retry's watch")
    act_as(APPROVER)
    assert _cli("approve", name, "--reason", "reviewed") == 0
    assert stage.outcome()["approval_name"] == name
    assert list(api.objects(NAMESPACE)) == [name]
    assert api.objects(NAMESPACE)[name]["spec"]["expiry"] == expiry
    assert [a for a in api.emulator.served if a[0] == "CREATE"] == [("CREATE", name)]


RETRY_SCRIPT = """
import json, sys
from pathlib import Path
from aiact.lineage import RunInfo
from components.approval.executor import run_approval
args = json.loads(sys.argv[2])
for key in (
    "model_dir",
    "evaluation_report_path",
    "integration_report_path",
    "integration_verdict_path",
    "approval_path",
):
    args[key] = Path(args[key])
run_approval(run=RunInfo(**json.loads(sys.argv[1])), **args)
"""


def test_cli_decisions_are_final_and_bound_to_the_cluster_identity(
    api: EmulatedApiServer,
    act_as: Callable[[str], Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Against the kmock HTTP emulation (not a real API server): the CLI records the caller's
    Kubernetes identity (SelfSubjectReview), refuses another name, and refuses a second
    decision; `kubectl aiact` uses the kubeconfig context's namespace."""
    act_as(PIPELINE)
    backend_from_uri(BACKEND_URI).ensure_request(_request("cli-check"))
    act_as(APPROVER)
    assert cli.kubectl_plugin_main(["approvals"]) == 0
    assert "evaluation report:  file:///r/e.html" in capsys.readouterr().out
    assert _cli("approve", "cli-check", "--approver", "bob", "--reason", "x") == 2
    assert "is not your Kubernetes identity 'alice@example.com'" in capsys.readouterr().err
    assert cli.kubectl_plugin_main(["approve", "cli-check", "-n", NAMESPACE, "--reason", "ok"]) == 0
    assert _cli("reject", "cli-check", "--reason", "changed my mind") == 2
    assert f"already approved by {APPROVER}: decisions are final" in capsys.readouterr().err
    assert cli.kubectl_plugin_main(["trace"]) == 2


def test_missing_credentials_are_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No API server needed: outside a pod and without a kubeconfig the backend says so."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    with pytest.raises(ApprovalError, match="no Kubernetes credentials"):
        backend_from_uri(BACKEND_URI)


def test_unreachable_api_server_is_an_error_not_an_expiry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against the kmock HTTP emulation (not a real API server), which is shut down while the
    backend waits: it reconnects with a backoff until the deadline, then reports the lost API
    instead of claiming the request expired."""
    server = EmulatedApiServer()
    server.start()
    kubeconfig = server.kubeconfig(tmp_path / "pipeline.kubeconfig", PIPELINE, NAMESPACE)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    backend = backend_from_uri(BACKEND_URI)
    backend.ensure_request(_request("lost"))
    threading.Timer(0.3, server.stop).start()
    with pytest.raises(ApprovalError, match="lost the Kubernetes API while awaiting"):
        backend.wait("lost", timeout_s=1.5)


def test_kubectl_runs_the_plugin(
    api: EmulatedApiServer, act_as: Callable[[str], Path], tmp_path: Path
) -> None:
    """Against the kmock HTTP emulation (not a real API server): the real `kubectl` finds
    `kubectl-aiact` on PATH (as the console script installs it) and passes its arguments."""
    act_as(PIPELINE)
    backend_from_uri(BACKEND_URI).ensure_request(_request("via-kubectl"))
    plugin_dir = tmp_path / "bin"
    plugin_dir.mkdir()
    plugin = plugin_dir / "kubectl-aiact"
    plugin.write_text(
        f'#!/bin/sh\nexec "{sys.executable}" -c '
        '"import sys; from aiact.cli import kubectl_plugin_main; sys.exit(kubectl_plugin_main())" '
        '"$@"\n'
    )
    plugin.chmod(0o755)
    env = {
        **os.environ,
        "KUBECONFIG": str(act_as(APPROVER)),
        "PATH": f"{plugin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
    }
    argv = [
        "kubectl",
        "aiact",
        "approve",
        "via-kubectl",
        "-n",
        NAMESPACE,
        "--reason",
        "looks right",
    ]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert f"via-kubectl: approved by {APPROVER}" in done.stdout
    (decision,) = api.objects(NAMESPACE)["via-kubectl"]["status"]["decisions"]
    assert decision["reason"] == "looks right"


# ----------------------------------------------------------------------------- N-of-M


def _as(act_as: Callable[[str], Path], user: str) -> KubernetesApprovalBackend:
    """A backend authenticated as `user`."""
    act_as(user)
    return backend_from_uri(BACKEND_URI)


def _decision(verdict: str, approver: str, reason: str = "reviewed", when: str = "") -> Decision:
    return Decision(verdict, approver, reason, when or utc_now())


def _raw_status_patch(
    backend: KubernetesApprovalBackend, name: str, status: dict[str, Any], version: str = ""
) -> ApiException:
    """Send a status patch bypassing the backend's own checks; the API error it gets."""
    current = backend.api.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name)
    patch = {
        "metadata": {"resourceVersion": version or current["metadata"]["resourceVersion"]},
        "status": status,
    }
    with pytest.raises(ApiException) as refused:
        backend.api.patch_namespaced_custom_object_status(
            GROUP, VERSION, NAMESPACE, PLURAL, name, patch
        )
    return refused.value


def test_production_needs_two_distinct_approvers(
    api: EmulatedApiServer,
    act_as: Callable[[str], Path],
    tmp_path: Path,
    sqlite_uri: str,
    production_run: RunInfo,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Against the kmock HTTP emulation (not a real API server), with manifests/cluster's rules
    applied: a production request needs two approvers; one is not enough, the same one twice
    counts once, a second distinct approver lets the stage continue."""
    args = _stage_args(tmp_path, sqlite_uri, production_run)
    stage, name = _start_stage(api, act_as, production_run, args)
    spec = api.objects(NAMESPACE)[name]["spec"]
    assert (spec["requiredApprovals"], spec["environment"]) == (2, "production")
    act_as(APPROVER)
    assert _cli("approve", name, "--reason", "evaluation report reviewed") == 0
    assert until(lambda: api.objects(NAMESPACE)[name].get("status"), "the first decision")
    time.sleep(0.5)
    assert stage.is_alive(), "one approver settled a request that needs two"
    capsys.readouterr()
    assert _cli("approvals") == 0
    assert name in capsys.readouterr().out, "a half-approved request is no longer pending"
    assert _cli("approve", name, "--reason", "really sure") == 2
    assert f"{APPROVER} has already decided approval {name!r}" in capsys.readouterr().err
    act_as(SECOND)
    assert _cli("approve", name, "--reason", "integration report reviewed") == 0
    result = stage.outcome()
    assert result["approver"] == f"{APPROVER}, {SECOND}" and result["decision"] == "approved"
    assert (result["approvals"], result["required_approvals"]) == (2, 2)
    assert result["reason"] == "evaluation report reviewed; integration report reviewed"
    status = api.objects(NAMESPACE)[name]["status"]
    assert [d["approver"] for d in status["decisions"]] == [APPROVER, SECOND]
    assert (status["phase"], status["approvals"]) == ("Approved", 2)
    document = json.loads(Path(args["approval_path"]).read_text())
    assert document["outcome"]["approvers"] == [APPROVER, SECOND]
    assert _approval_properties(sqlite_uri, production_run.run_id)["approvals"] == 2


def test_a_spoofed_requester_cannot_approve_alone(
    api: EmulatedApiServer,
    act_as: Callable[[str], Path],
    tmp_path: Path,
    sqlite_uri: str,
    production_run: RunInfo,
) -> None:
    """Against the kmock HTTP emulation (not a real API server), with manifests/cluster's rules
    applied: the pipeline's service account creates the request claiming `requestedBy: alice`.
    Alice is refused (by the client, and by the admission policy when she bypasses it); bob
    alone is not enough however often he approves; bob and dave settle it."""
    args = {**_stage_args(tmp_path, sqlite_uri, production_run), "requested_by": APPROVER}
    stage, name = _start_stage(api, act_as, production_run, args)
    assert api.objects(NAMESPACE)[name]["spec"]["requestedBy"] == APPROVER
    alice = _as(act_as, APPROVER)
    with pytest.raises(ApprovalError, match=f"four-eyes: {APPROVER} requested approval"):
        alice.decide(name, _decision(APPROVED, APPROVER))
    request = alice.request(name)
    forged = status_of(request, [_decision(APPROVED, APPROVER)])
    refused = _raw_status_patch(alice, name, forged)
    assert refused.status == 403 and "four-eyes" in str(refused.body), refused.body
    bob = _as(act_as, SECOND)
    bob.decide(name, _decision(APPROVED, SECOND))
    with pytest.raises(ApprovalError, match="has already decided"):
        bob.decide(name, _decision(APPROVED, SECOND))
    twice = status_of(request, [_decision(APPROVED, SECOND)] * 2)
    refused = _raw_status_patch(bob, name, twice)
    assert refused.status == 422 and "Duplicate value" in str(refused.body), refused.body
    time.sleep(0.3)
    assert stage.is_alive(), "one approver settled a request that needs two"
    _as(act_as, THIRD).decide(name, _decision(APPROVED, THIRD))
    assert stage.outcome()["approver"] == f"{SECOND}, {THIRD}"


def test_the_cluster_refuses_decisions_the_client_would_not_send(
    api: EmulatedApiServer, act_as: Callable[[str], Path]
) -> None:
    """Against the kmock HTTP emulation (not a real API server), with manifests/cluster's rules
    applied: raw status patches that bypass the backend's checks are refused by the CRD rules
    (422) or the admission policy (403), and a stale resourceVersion by the server (409)."""
    _as(act_as, PIPELINE).ensure_request(_request("raw", required_approvals=2))
    request = _request("raw", required_approvals=2)
    bob_ok, dave_ok = _decision(APPROVED, SECOND), _decision(APPROVED, THIRD)
    pipeline = _as(act_as, PIPELINE)
    refused = _raw_status_patch(pipeline, "raw", status_of(request, [bob_ok]))
    assert refused.status == 403 and "cannot come from a service account" in str(refused.body)
    bob = _as(act_as, SECOND)
    refused = _raw_status_patch(bob, "raw", status_of(request, [dave_ok]))
    assert refused.status == 403 and "is not the requesting user" in str(refused.body)
    refused = _raw_status_patch(bob, "raw", status_of(request, [bob_ok, dave_ok]))
    assert refused.status == 422 and "one decision at a time" in str(refused.body)
    api.emulator.groups["mallory@example.com"] = ["data-scientists", "system:authenticated"]
    mallory = _as(act_as, "mallory@example.com")
    mallory_ok = _decision(APPROVED, "mallory@example.com")
    refused = _raw_status_patch(mallory, "raw", status_of(request, [mallory_ok]))
    assert refused.status == 403 and "is not in the approver group" in str(refused.body)
    read = api.objects(NAMESPACE)["raw"]["metadata"]["resourceVersion"]
    bob.decide("raw", bob_ok)
    dave = _as(act_as, THIRD)
    stale = status_of(request, [dave_ok])  # written over what dave read, before bob's decision
    refused = _raw_status_patch(dave, "raw", stale, version=read)
    assert refused.status == 409, refused.body
    flipped = _decision(REJECTED, SECOND, "changed my mind")
    refused = _raw_status_patch(dave, "raw", status_of(request, [flipped, dave_ok]))
    assert refused.status == 422 and "append-only" in str(refused.body)
    refused = _raw_status_patch(dave, "raw", status_of(request, [dave_ok]))
    assert refused.status == 422 and "append-only" in str(refused.body)
    dave_no = _decision(REJECTED, THIRD, "bias in age band")
    dave.decide("raw", dave_no)
    assert _as(act_as, APPROVER).wait("raw", timeout_s=5) == [bob_ok, dave_no]
    assert api.objects(NAMESPACE)["raw"]["status"]["phase"] == "Rejected"
    with pytest.raises(ApprovalError, match=f"already rejected by {THIRD}"):
        _as(act_as, APPROVER).decide("raw", _decision(APPROVED, APPROVER))


@pytest.mark.parametrize("required", [1, 2])
def test_a_concurrent_decision_is_never_lost(
    api: EmulatedApiServer, act_as: Callable[[str], Path], required: int
) -> None:
    """Against the kmock HTTP emulation (not a real API server): bob's decision lands between
    alice's read and her patch. Her stale patch gets 409 and is retried on a fresh read, which
    appends her decision (two required) or refuses it because bob's settled the request."""
    _as(act_as, PIPELINE).ensure_request(_request("race", required_approvals=required))
    alice, bob = _as(act_as, APPROVER), _as(act_as, SECOND)
    patch = alice.api.patch_namespaced_custom_object_status
    interleaved: list[bool] = []

    def bob_first(*args: Any, **kwargs: Any) -> Any:
        if not interleaved:
            interleaved.append(True)
            bob.decide("race", _decision(APPROVED, SECOND))
        return patch(*args, **kwargs)

    alice.api.patch_namespaced_custom_object_status = bob_first
    if required == 1:
        with pytest.raises(ApprovalError, match=f"already approved by {SECOND}"):
            alice.decide("race", _decision(APPROVED, APPROVER))
        expected = [SECOND]
    else:
        alice.decide("race", _decision(APPROVED, APPROVER))
        expected = [SECOND, APPROVER]
    assert [d.approver for d in bob.decisions("race")] == expected
    assert [r.code for r in api.emulator.refusals] == [409]
    assert api.objects(NAMESPACE)["race"]["status"]["phase"] == "Approved"


def test_the_cluster_minimum_and_approver_group_on_creation(
    api: EmulatedApiServer, act_as: Callable[[str], Path]
) -> None:
    """Against the kmock HTTP emulation (not a real API server), with manifests/cluster's rules
    applied: a request below the cluster's minimum (from the policy ConfigMap, raised for a
    namespace an admin labelled production), one whose environment disagrees with that label,
    and one with a system approver group are all refused."""
    pipeline = _as(act_as, PIPELINE)
    api.emulator.namespace_labels[NAMESPACE] = {"aiact.eu/environment": "production"}
    with pytest.raises(ApprovalError, match="below the cluster minimum of 2 for production"):
        pipeline.ensure_request(_request("p1", environment="production", required_approvals=1))
    with pytest.raises(ApprovalError, match=r"disagrees with the aiact\.eu/environment label"):
        pipeline.ensure_request(_request("p2", environment="development", required_approvals=2))
    created = pipeline.ensure_request(
        _request("p3", environment="production", required_approvals=2)
    )
    assert created.required_approvals == 2 and set(api.objects(NAMESPACE)) == {"p3"}
    api.emulator.namespace_labels.clear()
    rules = api.emulator.rules
    assert rules is not None
    rules.params["aiact-system", "aiact-approval-policy"]["data"]["minRequiredApprovals"] = "3"
    with pytest.raises(
        ApprovalError, match="requiredApprovals 2 is below the cluster minimum of 3"
    ):
        pipeline.ensure_request(_request("d1", required_approvals=2))
    with pytest.raises(ApprovalError, match="system group"):
        pipeline.ensure_request(_request("d2", approver_group="system:authenticated"))
    resource = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelApproval",
        "metadata": {"name": "d3"},
        "spec": api.objects(NAMESPACE)["p3"]["spec"] | {"approverGroup": "system:authenticated"},
    }
    with pytest.raises(ApiException) as refused:
        pipeline.api.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, resource)
    assert refused.value.status == 422 and "system group" in str(refused.value.body)
    assert set(api.objects(NAMESPACE)) == {"p3"}


def test_no_decision_after_expiry(api: EmulatedApiServer, act_as: Callable[[str], Path]) -> None:
    """Against the kmock HTTP emulation (not a real API server), with manifests/cluster's rules
    applied: once a request expires the backend refuses a decision, the CRD refuses one dated
    after the expiry, and the request is no longer pending."""
    expires = math.ceil(time.time()) + 1  # whole seconds, 1 to 2 s from now
    expiry = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(expires))
    _as(act_as, PIPELINE).ensure_request(_request("late", expiry))
    alice = _as(act_as, APPROVER)
    assert [r.name for r in alice.pending()] == ["late"]
    time.sleep(max(0.0, expires - time.time()) + 0.2)
    assert alice.pending() == []
    with pytest.raises(ApprovalError, match=r"expired at .*: it can no longer be decided"):
        alice.decide("late", _decision(APPROVED, APPROVER))
    after = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(expires + 1))
    late = status_of(_request("late", expiry), [_decision(APPROVED, APPROVER, when=after)])
    refused = _raw_status_patch(alice, "late", late)
    assert refused.status == 422 and "expired before this decision" in str(refused.body)
