"""The deployer controller, run for real with kopf (`kopf.operator` in a thread) against the
emulated Kubernetes API (tests/aiact/deployer_emulator.py), driven by the real deployment stage
and `aiact rollback`, on genuine chains of custody built by the real stage executors (two runs
training two different models, each approved by a human through ModelApproval resources in the
emulator, under the CRD rules and admission policies the emulator enforces).

The sequence: model A full, model B canary 10%, model B shadow, model B full, rollback to A;
then refusals (a rollout that never becomes Ready, a request naming another approval).

What this does NOT check, because no real cluster runs here: RBAC (the emulator authorises
everyone; tests/manifests/test_deployer_manifests.py evaluates the shipped rules offline), the
CRDs' schemas and CEL rules on DeploymentRequests (checked offline in test_deployer_render.py),
KServe itself (`FakeKServe` plays its controller by setting status Ready through the API; no
pod, Knative revision, traffic split or Istio mirror exists, so which model would answer which
request is not checked), server-side apply's managedFields (the emulator applies as one field
manager), and the controller's in-cluster credentials (it reads approvals with the test's
kubeconfig and the platform configuration from a file instead of the ConfigMap).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf
import pytest

from aiact import cli, lineage
from aiact.approval import APPROVED, Decision
from aiact.approval.kubernetes import KubernetesApprovalBackend
from aiact.custody import verify_ledger, verify_model
from aiact.deployer import operator
from aiact.deployer.kube import DeploymentRequests, KubernetesApplier
from aiact.deployer.reconcile import Deployer, DeployerConfig, deploy_request
from aiact.deployer.render import DEPLOYMENT_MODE, object_digest
from aiact.hashing import sha256_path
from aiact.ledger import ledger_from_uri
from aiact.lineage import LineageStore
from aiact.platform import parse_platform
from components.deployment.core import DeploymentRefused
from components.deployment.executor import run_deployment
from tests.aiact.deployer_emulator import (
    CONTROLLER,
    PIPELINE,
    DeployerApiServer,
    FakeKServe,
    deployer_api_server,
)
from tests.chain import Chain

NAMESPACE = "team-a"
SERVING = "aiact-serving-dev"
APPROVER = "alice"
ISVC = ("serving.kserve.io", "v1beta1", SERVING, "inferenceservices")


@dataclass
class World:
    root: Path
    uri: str
    ledger: str
    api: DeployerApiServer
    kserve: FakeKServe
    a: Chain
    b: Chain
    deployer: Deployer

    def isvc(self, name: str) -> dict[str, Any]:
        return self.api.emulator.stored("inferenceservices", SERVING)[name]

    def entries(self) -> list[dict[str, Any]]:
        return ledger_from_uri(self.ledger).entries()


def _approve_as_human(api: DeployerApiServer, chain: Chain) -> None:
    """The approval stage waits on a ModelApproval; alice approves it under her own identity."""
    errors: list[BaseException] = []

    def stage() -> None:
        try:
            chain.approve(demo_approver="", backend=f"kubernetes://{NAMESPACE}", timeout_s=60)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=stage)
    thread.start()
    alice = KubernetesApprovalBackend(NAMESPACE, api.api_client(APPROVER))
    deadline = time.monotonic() + 60
    while not (pending := alice.pending()) and time.monotonic() < deadline:
        time.sleep(0.1)
    (request,) = [r for r in pending if r.pipeline_run_id == chain.run_id]
    alice.decide(
        request.name,
        Decision(
            decision=APPROVED,
            approver=APPROVER,
            reason="reviewed the evaluation and integration reports",
            decided_at=time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
            acknowledged=request.acknowledgements_required,
        ),
    )
    thread.join(60)
    assert not errors, errors


def _run_operator(api: DeployerApiServer, deployer: Deployer) -> Callable[[], None]:
    """The real kopf operator with the deployer's handlers, in a thread; returns its stopper."""
    registry = kopf.OperatorRegistry()
    operator.register(registry, lambda: deployer)
    token = f"token-{CONTROLLER}"
    api.emulator.tokens[token] = CONTROLLER

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=api.url, token=token)

    @kopf.on.startup(registry=registry)
    def quiet(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.enabled = False
        settings.watching.server_timeout = 10

    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(
        target=lambda: asyncio.run(
            kopf.operator(
                registry=registry,
                clusterwide=True,
                standalone=True,
                stop_flag=stop,
                ready_flag=ready,
            )
        ),
        daemon=True,
    )
    thread.start()
    assert ready.wait(30), "kopf did not start"

    def stopper() -> None:
        stop.set()
        thread.join(15)

    return stopper


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("deployer")
    uri = f"sqlite://{root / 'mlmd.sqlite'}"
    ledger = f"file://{root / 'ledger'}"
    platform_text = (
        "defaults:\n"
        "  environment: development\n"
        "  required_approvals: 1\n"
        "  approver_group: aiact-approvers\n"
        f"  ledger_uri: {ledger}\n"
        f"  approval_backend: kubernetes://{NAMESPACE}\n"
        "  max_approval_timeout_s: 3600\n"
    )
    (root / "platform.yaml").write_text(platform_text)
    with deployer_api_server() as api, pytest.MonkeyPatch.context() as env:
        env.setenv("AIACT_PLATFORM_CONFIG", str(root / "platform.yaml"))
        env.setenv("AIACT_NAMESPACE", NAMESPACE)
        env.setenv(
            "KUBECONFIG", str(api.kubeconfig(root / "pipeline.kubeconfig", PIPELINE, NAMESPACE))
        )
        env.setenv("AIACT_DEPLOYMENT_TIMEOUT_S", "60")
        a = Chain(root, uri, "run-a").through_integration()
        _approve_as_human(api, a)
        b = Chain(root, uri, "run-b", seed=1).through_integration()
        _approve_as_human(api, b)
        assert sha256_path(a.paths["model"]) != sha256_path(b.paths["model"])
        deployer = Deployer(
            lineage=LineageStore.connect(uri),
            platform_for=lambda ns: parse_platform(platform_text, namespace=ns, source="test"),
            applier=KubernetesApplier(api.api_client(CONTROLLER)),
            config=DeployerConfig(ready_timeout_s=15),
        )
        kserve = FakeKServe(api.api_client("kserve-controller"), SERVING).start()
        stop = _run_operator(api, deployer)
        try:
            yield World(root, uri, ledger, api, kserve, a, b, deployer)
        finally:
            stop()
            kserve.stop()


def _deploy(world: World, chain: Chain, strategy: str, percent: int = 0) -> dict[str, Any]:
    out = chain.out(f"deployment-{strategy}-{time.monotonic_ns()}.json")
    run_deployment(
        run=chain.run,
        metadata_uri=world.uri,
        model_dir=chain.paths["model"],
        model_uri=str(chain.paths["model"]),
        approval_path=chain.paths["approval"],
        approval_uri=str(chain.paths["approval"]),
        strategy=strategy,
        canary_percent=percent,
        ledger_uri="",
        deployment_path=out,
        deployment_uri=str(out),
    )
    entry: dict[str, Any] = json.loads(out.read_text())
    return entry


def _request_status(world: World, entry: dict[str, Any]) -> dict[str, Any]:
    namespace, name = entry["deployment_request"].split("/")
    found = world.api.emulator.stored("deploymentrequests", namespace)[name]
    status: dict[str, Any] = found["status"]
    return status


def _stored_spec_digest(world: World, name: str) -> str:
    return object_digest(world.isvc(name))


def test_full_canary_shadow_full_and_rollback_through_the_controller(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    model_a, model_b = (sha256_path(c.paths["model"]) for c in (world.a, world.b))
    uri_a, uri_b = (str(c.paths["model"]) for c in (world.a, world.b))

    # 1. Model A, full rollout: the stage asked, the controller applied and recorded.
    first = _deploy(world, world.a, "full")
    service = world.isvc("credit-scoring")
    predictor = service["spec"]["predictor"]
    assert predictor["model"]["storageUri"] == uri_a
    assert "canaryTrafficPercent" not in predictor
    assert service["metadata"]["annotations"][DEPLOYMENT_MODE] == "Serverless"
    assert first["sequence"] == 1 and first["applied_to_cluster"] is True
    assert first["serving_namespace"] == SERVING
    (applied,) = first["applied"]
    assert applied["sha256"] == _stored_spec_digest(world, "credit-scoring")
    assert applied["uid"] == service["metadata"]["uid"]
    status = _request_status(world, first)
    assert status["phase"] == "Succeeded" and status["ledger"]["sequence"] == 1
    assert json.loads(status["entry"]) == first
    assert first["approved_by"] == APPROVER

    # 2. Model B as a 10% canary on the same InferenceService (a new generation).
    canary = _deploy(world, world.b, "canary", 10)
    service = world.isvc("credit-scoring")
    assert service["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert service["spec"]["predictor"]["model"]["storageUri"] == uri_b
    assert service["metadata"]["generation"] == 2
    assert canary["applied"][0]["generation"] == 2 and canary["archives"] == []

    # 3. Model B as a shadow: the production InferenceService is untouched; a cluster-local copy
    # and a mirroring VirtualService appear.
    shadow = _deploy(world, world.b, "shadow")
    assert world.isvc("credit-scoring")["metadata"]["generation"] == 2
    copy = world.isvc("credit-scoring-shadow")
    assert copy["metadata"]["labels"]["networking.kserve.io/visibility"] == "cluster-local"
    (mirror,) = world.api.emulator.stored("virtualservices", SERVING).values()
    assert mirror["spec"]["http"][0]["mirror"]["host"].startswith("credit-scoring-shadow-")
    assert [a["kind"] for a in shadow["applied"]] == ["InferenceService", "VirtualService"]

    # 4. Model B full: the canary share is gone (server-side apply drops what is not applied).
    full_b = _deploy(world, world.b, "full")
    predictor = world.isvc("credit-scoring")["spec"]["predictor"]
    assert "canaryTrafficPercent" not in predictor and predictor["model"]["storageUri"] == uri_b
    assert full_b["archives"] == [lineage.version_of(model_a)]
    store = LineageStore.connect(world.uri)
    assert lineage.properties_of(store.require_artifact(lineage.MODEL, model_a))["stage"] == (
        "archived"
    )

    # 5. Rollback through the same controller: A serves again, with its own ledger entry.
    capsys.readouterr()
    code = cli.main(
        [
            "rollback",
            "credit-scoring",
            "--reason",
            "latency regression in B",
            "--deployments",
            f"kubernetes://{NAMESPACE}",
            "--metadata-uri",
            world.uri,
            "--workdir",
            str(world.root / "sre"),
            "--requested-by",
            "sre-bob",
            "--timeout",
            "60",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "rollback of credit-scoring" in out and "ledger entry 5" in out
    assert world.isvc("credit-scoring")["spec"]["predictor"]["model"]["storageUri"] == uri_a
    rollback = world.entries()[-1]
    assert rollback["action"] == "rollback" and rollback["model_sha256"] == model_a
    assert rollback["rolled_back_from"] == model_b and rollback["restores_sequence"] == 1
    assert rollback["requested_by"] == "sre-bob"
    assert rollback["applied"][0]["sha256"] == _stored_spec_digest(world, "credit-scoring")
    store = LineageStore.connect(world.uri)
    stages = {
        m: lineage.properties_of(store.require_artifact(lineage.MODEL, m))["stage"]
        for m in (model_a, model_b)
    }
    assert stages == {model_a: "production", model_b: "archived"}
    # Both ways: five entries, five recorded deployments; both models' chains still verify.
    assert verify_ledger(store, world.ledger).sequence == 5
    verify_model(store, model_a, run_id="run-a", through="deployment")
    verify_model(store, model_b, run_id="run-b", through="deployment")
    assert cli.main(["verify-ledger", "--ledger", world.ledger, "--metadata-uri", world.uri]) == 0


def test_a_rollout_that_never_becomes_ready_appends_nothing(world: World) -> None:
    before = len(world.entries())
    world.kserve.hold.set()
    try:
        with pytest.raises(DeploymentRefused, match=r"was not Ready within 15 s"):
            _deploy(world, world.a, "canary", 5)
    finally:
        world.kserve.hold.clear()
    assert len(world.entries()) == before


def test_the_controller_refuses_a_request_naming_another_approval(world: World) -> None:
    """A submitter creates a request by hand (as the pipeline's service account may): model B of
    run B, but run A's approval. The controller re-derives everything and refuses."""
    before = len(world.entries())
    requests = DeploymentRequests(NAMESPACE, world.api.api_client(PIPELINE))
    model_b = sha256_path(world.b.paths["model"])
    forged = deploy_request(
        namespace=NAMESPACE,
        key="e" * 64,
        model_name="credit-scoring",
        model_sha256=model_b,
        run_id="run-b",
        approval_name="whatever",
        approval_sha256=sha256_path(world.a.paths["approval"]),
        strategy="full",
        canary_percent=0,
    )
    requests.submit(forged)
    status = requests.wait(forged["metadata"]["name"], 30)
    assert status["phase"] == "Failed"
    assert "request names approval" in status["message"]
    assert len(world.entries()) == before
    # The status is the controller's answer; the pipeline cannot pre-empt it (the spec it may
    # write is immutable and the status not its to write: RBAC, checked offline).
