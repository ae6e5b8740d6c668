"""Reconcile one DeploymentRequest: verify, render, apply, wait for Ready, append to the ledger,
report. Plain Python (the kopf handlers in `aiact.deployer.operator` only call `reconcile`), run
by the deployer controller on a cluster and by the deployment stage in-process without one.

A request (spec, camelCase as in the CRD manifests/deployer/deploymentrequest-crd.yaml):

- `action: deploy`: model {name, version, sha256}, pipelineRunId, approval {name, sha256},
  strategy full|canary|shadow, canaryPercent. The controller trusts none of it beyond naming
  what to check: the chain of custody of that model in that run must verify through approval
  (every artefact re-hashed), its approval must be the request's and must authorise the
  deployment under the platform's rules for the request's namespace (`authorise_deployment`),
  and the model URI comes from the chain, not the request.
- `action: rollback`: model {name}, requestedBy, reason. The ledger decides what "previous"
  means: the entries of that model name in the request's environment; the model currently
  serving is the newest full, canary or rollback entry, the one restored is the newest earlier
  full (or rollback) entry of another model. That model's own chain must verify through its
  deployment (which checks its ledger entry) and its approval must still authorise it.

Either way the ledger entry is appended only after every applied object is Ready, with each
object's digest (`render.object_digest`), and is keyed deterministically, so a reconcile
repeated after a crash returns the entry instead of appending a second one.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiact import lineage
from aiact.approval import ApprovalError
from aiact.custody import Custody, CustodyError, Verifier
from aiact.deployer import (
    ACTIONS,
    DEPLOY,
    FAILED,
    GROUP,
    KIND,
    ROLLBACK,
    SUCCEEDED,
    VERSION,
)
from aiact.deployer.authorise import Authorisation, authorise_deployment
from aiact.deployer.render import DEFAULT_RUNTIME, ServedModel, object_digest, render
from aiact.hashing import sha256_json
from aiact.ledger import Ledger, LedgerError, ledger_from_uri
from aiact.lineage import LineageError, LineageStore, version_of
from aiact.observability import log_event
from aiact.platform import ENVIRONMENTS, PlatformConfig, PlatformError
from components.approval.core import utc_now
from components.deployment import core
from components.deployment.core import DeploymentRefused

STAGE = "deployer"
SERVING_NAMESPACES_ENV = "AIACT_DEPLOYER_SERVING_NAMESPACES"
RUNTIME_ENV = "AIACT_DEPLOYER_RUNTIME"
READY_TIMEOUT_ENV = "AIACT_DEPLOYER_READY_TIMEOUT_S"
MIRROR_PERCENT_ENV = "AIACT_DEPLOYER_MIRROR_PERCENT"
DEFAULT_SERVING_NAMESPACES = {
    "development": "aiact-serving-dev",
    "staging": "aiact-serving-staging",
    "production": "aiact-serving",
}
DEFAULT_READY_TIMEOUT_S = 900.0
# Failures that are verdicts on the request (its status says why); anything else is retried.
REFUSALS = (
    DeploymentRefused,
    CustodyError,
    LineageError,
    PlatformError,
    ApprovalError,
    LedgerError,
)


class DeploymentFailed(DeploymentRefused):
    """The rollout was authorised but did not become Ready in time."""


@dataclass(frozen=True)
class DeployerConfig:
    """The controller's own settings (its Deployment's environment, set by platform admins).

    Attributes:
        serving_namespaces: The namespace InferenceServices of each environment live in.
        runtime: The ServingRuntime that serves the suite's model package.
        ready_timeout_s: How long to wait for KServe to report an applied object Ready.
        mirror_percent: Share of production requests a shadow receives as mirrored copies.
    """

    serving_namespaces: Mapping[str, str] = field(
        default_factory=lambda: dict(DEFAULT_SERVING_NAMESPACES)
    )
    runtime: str = DEFAULT_RUNTIME
    ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S
    mirror_percent: float = 100.0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> DeployerConfig:
        """Read AIACT_DEPLOYER_* (`SERVING_NAMESPACES`: env=namespace,...; RUNTIME;
        READY_TIMEOUT_S; MIRROR_PERCENT); unset ones keep their defaults.

        Raises:
            PlatformError: on a malformed value.
        """
        namespaces = dict(DEFAULT_SERVING_NAMESPACES)
        text = environ.get(SERVING_NAMESPACES_ENV, "").strip()
        for item in filter(None, (part.strip() for part in text.split(","))):
            environment, sep, namespace = item.partition("=")
            if not sep or environment not in ENVIRONMENTS or not namespace:
                raise PlatformError(
                    f"{SERVING_NAMESPACES_ENV}: {item!r} is not ENVIRONMENT=NAMESPACE with "
                    f"ENVIRONMENT one of {', '.join(ENVIRONMENTS)}"
                )
            namespaces[environment] = namespace
        try:
            timeout = float(environ.get(READY_TIMEOUT_ENV) or DEFAULT_READY_TIMEOUT_S)
            mirror = float(environ.get(MIRROR_PERCENT_ENV) or 100.0)
        except ValueError as exc:
            raise PlatformError(f"deployer configuration: {exc}") from None
        if timeout <= 0:
            raise PlatformError(f"{READY_TIMEOUT_ENV} must be positive, got {timeout:g}")
        return cls(
            serving_namespaces=namespaces,
            runtime=environ.get(RUNTIME_ENV) or DEFAULT_RUNTIME,
            ready_timeout_s=timeout,
            mirror_percent=mirror,
        )

    def serving_namespace(self, environment: str) -> str:
        """The serving namespace of an environment."""
        try:
            return self.serving_namespaces[environment]
        except KeyError:
            raise PlatformError(f"no serving namespace for environment {environment!r}") from None


class Applier(Protocol):
    """Where rendered objects go."""

    applies: bool

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or server-side apply `obj`; returns the object as stored."""

    def wait_ready(self, obj: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Block until the stored object is Ready; DeploymentFailed after `timeout_s`."""


class NoCluster:
    """No cluster: nothing is applied; the ledger entry says so (`applied_to_cluster: false`)."""

    applies = False

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Returns `obj` unchanged: nothing was sent anywhere."""
        return obj

    def wait_ready(self, obj: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Returns `obj` at once."""
        return obj


@dataclass(frozen=True)
class Request:
    """A DeploymentRequest as the reconciler reads it."""

    namespace: str
    name: str
    uid: str
    action: str
    model_name: str
    model_sha256: str = ""
    run_id: str = ""
    approval_name: str = ""
    approval_sha256: str = ""
    strategy: str = "full"
    canary_percent: int = 0
    requested_by: str = ""
    reason: str = ""

    @property
    def ref(self) -> str:
        """namespace/name."""
        return f"{self.namespace}/{self.name}"


def parse_request(obj: Mapping[str, Any]) -> Request:
    """The request a DeploymentRequest object carries.

    Raises:
        DeploymentRefused: one line naming the missing or malformed field.
    """
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    action = spec.get("action", DEPLOY)
    if action not in ACTIONS:
        raise DeploymentRefused(f"spec.action must be one of {ACTIONS}, got {action!r}")
    model = spec.get("model") or {}
    if not model.get("name"):
        raise DeploymentRefused("spec.model.name is required")
    common = {
        "namespace": str(metadata.get("namespace") or ""),
        "name": str(metadata.get("name") or ""),
        "uid": str(metadata.get("uid") or ""),
        "action": action,
        "model_name": str(model["name"]),
    }
    if not common["namespace"] or not common["name"]:
        raise DeploymentRefused("a DeploymentRequest needs metadata.name and metadata.namespace")
    if action == ROLLBACK:
        return Request(
            **common,
            requested_by=str(spec.get("requestedBy") or ""),
            reason=str(spec.get("reason") or ""),
        )
    approval = spec.get("approval") or {}
    for what, value in (
        ("spec.model.sha256", model.get("sha256")),
        ("spec.pipelineRunId", spec.get("pipelineRunId")),
        ("spec.approval.name", approval.get("name")),
        ("spec.approval.sha256", approval.get("sha256")),
        ("spec.strategy", spec.get("strategy")),
    ):
        if not value:
            raise DeploymentRefused(f"{what} is required for action deploy")
    if model.get("version") and model["version"] != version_of(str(model["sha256"])):
        raise DeploymentRefused(
            f"spec.model.version {model['version']!r} is not the version of sha256 "
            f"{str(model['sha256'])[:12]}"
        )
    percent = spec.get("canaryPercent", 0)
    if isinstance(percent, bool) or not isinstance(percent, int):
        raise DeploymentRefused(f"spec.canaryPercent must be an integer, got {percent!r}")
    return Request(
        **common,
        model_sha256=str(model["sha256"]),
        run_id=str(spec["pipelineRunId"]),
        approval_name=str(approval["name"]),
        approval_sha256=str(approval["sha256"]),
        strategy=str(spec["strategy"]),
        canary_percent=percent,
    )


def deployment_key(
    run_id: str, model_sha256: str, approval_sha256: str, plan: dict[str, Any]
) -> str:
    """The deterministic identity of one deployment: the same run, model, approval and rollout
    always map to one ledger entry."""
    return sha256_json(
        {"run": run_id, "model": model_sha256, "approval": approval_sha256, "plan": plan}
    )


def request_name(key: str) -> str:
    """The DeploymentRequest name of a deployment key (retries reuse the request)."""
    return f"deploy-{key[:40]}"


def deploy_request(
    *,
    namespace: str,
    key: str,
    model_name: str,
    model_sha256: str,
    run_id: str,
    approval_name: str,
    approval_sha256: str,
    strategy: str,
    canary_percent: int,
) -> dict[str, Any]:
    """The DeploymentRequest the deployment stage creates (action deploy)."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {
            "name": request_name(key),
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/part-of": "aiact",
                "aiact.eu/model-name": model_name,
                "aiact.eu/model-version": version_of(model_sha256),
            },
        },
        "spec": {
            "action": DEPLOY,
            "model": {
                "name": model_name,
                "version": version_of(model_sha256),
                "sha256": model_sha256,
            },
            "pipelineRunId": run_id,
            "approval": {"name": approval_name, "sha256": approval_sha256},
            "strategy": strategy,
            "canaryPercent": canary_percent,
        },
    }


def rollback_request(
    *, namespace: str, name: str, model_name: str, requested_by: str, reason: str
) -> dict[str, Any]:
    """The DeploymentRequest `aiact rollback` creates (action rollback)."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "aiact", "aiact.eu/model-name": model_name},
        },
        "spec": {
            "action": ROLLBACK,
            "model": {"name": model_name},
            "requestedBy": requested_by,
            "reason": reason,
        },
    }


def production_models(store: LineageStore) -> list[Any]:
    """Every Model artefact currently in the `production` stage (an indexed query, not a scan
    of every model)."""
    from aiact.queries import production_models as indexed

    return indexed(store)


def _affects_production(entry: Mapping[str, Any]) -> bool:
    return entry.get("action") == ROLLBACK or entry.get("strategy") in ("full", "canary")


def _rolled_out(entry: Mapping[str, Any]) -> bool:
    return entry.get("action") == ROLLBACK or entry.get("strategy") == "full"


def rollback_target(
    entries: list[dict[str, Any]], model_name: str, environment: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The entry of the model serving now and the entry of the model a rollback restores.

    Raises:
        DeploymentRefused: when nothing of that name serves, or no earlier model exists.
    """
    mine = [
        e
        for e in entries
        if e.get("model_name") == model_name and e.get("environment") == environment
    ]
    serving = [e for e in mine if _affects_production(e)]
    if not serving:
        raise DeploymentRefused(
            f"no deployment of {model_name!r} in {environment!r} in the ledger: nothing to "
            "roll back"
        )
    current = serving[-1]
    earlier = [
        e
        for e in mine
        if e["sequence"] < current["sequence"]
        and _rolled_out(e)
        and e.get("model_sha256") != current.get("model_sha256")
    ]
    if not earlier:
        raise DeploymentRefused(
            f"no earlier production model of {model_name!r} in {environment!r} to restore "
            f"(ledger entry {current['sequence']} is its first rollout)"
        )
    return current, earlier[-1]


@dataclass
class Deployer:
    """What `reconcile` works with.

    Attributes:
        lineage: The suite's metadata store (read only here).
        platform_for: The platform configuration of a request's namespace.
        applier: Where rendered objects go (KubernetesApplier, or NoCluster).
        config: The controller's own settings.
        ledger_uri: The run's ledger where the platform names none (in-process, development).
        verifier: A verifier to reuse (the stage's), else one per reconcile.
    """

    lineage: LineageStore
    platform_for: Callable[[str], PlatformConfig]
    applier: Applier
    config: DeployerConfig = field(default_factory=DeployerConfig)
    ledger_uri: str = ""
    verifier: Verifier | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def _failed(message: str) -> dict[str, Any]:
    return {"phase": FAILED, "message": " ".join(message.split()), "completedAt": utc_now()}


def reconcile(obj: Mapping[str, Any], deployer: Deployer) -> dict[str, Any]:
    """Carry out one DeploymentRequest; returns the status to write.

    A refusal (custody, approval, platform, ledger) or a rollout that does not become Ready is
    a status with phase Failed and a one-line message; nothing is appended to the ledger then.
    Other errors (an unreachable API server) propagate, so that the caller retries.
    """
    with deployer.lock:
        try:
            request = parse_request(obj)
            log_event(STAGE, "reconcile", request=request.ref, action=request.action)
            if request.action == ROLLBACK:
                return _rollback(request, deployer)
            return _deploy(request, deployer)
        except REFUSALS as exc:
            metadata = obj.get("metadata") or {}
            log_event(
                STAGE,
                "refused",
                request=f"{metadata.get('namespace')}/{metadata.get('name')}",
                error=str(exc),
            )
            return _failed(str(exc))


def _ledger(authorisation: Authorisation) -> Ledger:
    if not authorisation.settings.ledger_uri:
        raise LedgerError(
            "no deployment ledger configured: the platform names none and the run gave none"
        )
    return ledger_from_uri(authorisation.settings.ledger_uri)


def _existing(ledger: Ledger, request: Request) -> dict[str, Any] | None:
    """The entry a previous reconcile of this very request appended (crash after the append)."""
    return next(
        (
            e
            for e in ledger.entries()
            if e.get("deployment_request") == request.ref
            and e.get("deployment_request_uid") == request.uid
        ),
        None,
    )


def _roll_out(
    deployer: Deployer, plan: dict[str, Any], model: ServedModel, serving_namespace: str
) -> list[dict[str, Any]]:
    """Apply every object of the plan and wait until each is Ready; their records."""
    objects = render(
        plan,
        model,
        namespace=serving_namespace,
        runtime=deployer.config.runtime,
        mirror_percent=deployer.config.mirror_percent,
    )
    applied = []
    for rendered in objects:
        stored = deployer.applier.apply(rendered)
        if rendered["kind"] == "InferenceService":
            stored = deployer.applier.wait_ready(stored, deployer.config.ready_timeout_s)
        metadata = stored.get("metadata") or {}
        applied.append(
            {
                "apiVersion": rendered["apiVersion"],
                "kind": rendered["kind"],
                "namespace": serving_namespace,
                "name": rendered["metadata"]["name"],
                "sha256": object_digest(rendered),
                "uid": str(metadata.get("uid", "")),
                "generation": int(metadata.get("generation", 0) or 0),
            }
        )
        log_event(
            STAGE,
            "applied" if deployer.applier.applies else "rendered_not_applied",
            kind=rendered["kind"],
            name=f"{serving_namespace}/{rendered['metadata']['name']}",
            sha256=applied[-1]["sha256"][:12],
        )
    return applied


def _status(
    request: Request,
    entry: dict[str, Any],
    ledger: Ledger,
    *,
    applies: bool,
    custody_sha256: str,
) -> dict[str, Any]:
    import json

    head = ledger.verify()
    where = (
        f"applied to {entry['serving_namespace']}"
        if applies
        else "nothing was applied to a cluster (no cluster: in-process reconcile)"
    )
    return {
        "phase": SUCCEEDED,
        "message": (
            f"{request.action} of {entry['model_name']} {entry['model_version']} "
            f"({entry['strategy']}) in {entry['environment']}: {where}; ledger entry "
            f"{entry['sequence']}"
        ),
        "action": request.action,
        "environment": entry["environment"],
        "servingNamespace": entry["serving_namespace"],
        "model": {
            "name": entry["model_name"],
            "version": entry["model_version"],
            "sha256": entry["model_sha256"],
        },
        "appliedToCluster": applies,
        "applied": entry["applied"],
        "deploymentKey": entry["deployment_key"],
        "custodySha256": custody_sha256,
        "approvedBy": entry["approved_by"],
        "ledger": {
            "uri": ledger.location,
            "sequence": entry["sequence"],
            "entrySha256": entry["entry_sha256"],
            "headSequence": head.sequence,
            "headSha256": head.entry_sha256,
        },
        "entry": json.dumps(entry, sort_keys=True, separators=(",", ":")),
        "completedAt": utc_now(),
    }


def _verify_deploy(
    verifier: Verifier, request: Request, platform: PlatformConfig, deployer: Deployer
) -> tuple[Custody, Authorisation, Any]:
    custody = verifier.verify_model(request.model_sha256, run_id=request.run_id, through="approval")
    approval = custody.links["approval"].outputs["approval"]
    if approval.name != request.approval_sha256:
        raise DeploymentRefused(
            f"request names approval {request.approval_sha256[:12]}, but run {request.run_id} "
            f"approved model {request.model_sha256[:12]} with {approval.name[:12]}"
        )
    model = custody.links["training"].outputs["model"]
    recorded_name = lineage.properties_of(model).get("model_name")
    if recorded_name and recorded_name != request.model_name:
        raise DeploymentRefused(
            f"request names model {request.model_name!r}, but sha256 "
            f"{request.model_sha256[:12]} is model {recorded_name!r}"
        )
    authorisation = authorise_deployment(
        verifier, custody, platform, ledger_uri=deployer.ledger_uri
    )
    document_name = str(authorisation.approval["request"].get("name", ""))
    if request.approval_name and document_name != request.approval_name:
        raise DeploymentRefused(
            f"request names approval {request.approval_name!r}, the chain holds {document_name!r}"
        )
    return custody, authorisation, model


def _append_rollout(
    request: Request,
    deployer: Deployer,
    ledger: Ledger,
    facts: dict[str, Any],
    *,
    authorisation: Authorisation,
    custody: Custody,
    plan: dict[str, Any],
    serving_namespace: str,
    applied: list[dict[str, Any]],
    key: str,
    event: str,
) -> dict[str, Any]:
    """Append a rollout's ledger entry (the action's own `facts` and what every rollout
    records), log `event` and return the request's status."""
    settings = authorisation.settings
    entry: dict[str, Any] = ledger.append(
        {
            **facts,
            "approved_by": authorisation.decision["approver"],
            "approval_kind": authorisation.decision["kind"],
            "environment": settings.environment,
            "custody_sha256": custody.sha256(),
            "platform_sha256": settings.platform_sha256,
            "deployed_at": utc_now(),
            "serving_namespace": serving_namespace,
            "applied_to_cluster": deployer.applier.applies,
            "applied": applied,
            "deployment_request": request.ref,
            "deployment_request_uid": request.uid,
            **plan,
        },
        key=key,
    )
    log_event(STAGE, event, request=request.ref, sequence=entry["sequence"])
    return _status(
        request,
        entry,
        ledger,
        applies=deployer.applier.applies,
        custody_sha256=custody.sha256(),
    )


def _deploy(request: Request, deployer: Deployer) -> dict[str, Any]:
    platform = deployer.platform_for(request.namespace)
    plan = core.rollout_plan(request.strategy, request.canary_percent)
    verifier = deployer.verifier or Verifier(deployer.lineage)
    try:
        custody, authorisation, model = _verify_deploy(verifier, request, platform, deployer)
    finally:
        if deployer.verifier is None:
            verifier.close()
    settings = authorisation.settings
    ledger = _ledger(authorisation)
    key = deployment_key(request.run_id, request.model_sha256, request.approval_sha256, plan)
    done = ledger.find(key)
    if done is not None:
        return _status(
            request, done, ledger, applies=deployer.applier.applies, custody_sha256=custody.sha256()
        )
    entries = ledger.entries()
    if plan["strategy"] == "shadow" and not [
        e
        for e in entries
        if e.get("model_name") == request.model_name
        and e.get("environment") == settings.environment
        and _affects_production(e)
    ]:
        raise DeploymentRefused(
            f"a shadow rollout mirrors the production model, but {request.model_name!r} has "
            f"none in {settings.environment!r}: deploy it (full or canary) first"
        )
    serving_namespace = deployer.config.serving_namespace(settings.environment)
    served = ServedModel(
        name=request.model_name,
        sha256=request.model_sha256,
        uri=model.uri,
        run_id=request.run_id,
        request=request.ref,
    )
    applied = _roll_out(deployer, plan, served, serving_namespace)
    replaced = core.replaced_by_full_rollout(
        plan, model.id, request.model_name, production_models(deployer.lineage)
    )
    return _append_rollout(
        request,
        deployer,
        ledger,
        {
            "action": DEPLOY,
            "model_name": request.model_name,
            "model_version": version_of(request.model_sha256),
            "model_sha256": request.model_sha256,
            "model_uri": model.uri,
            "approval_sha256": request.approval_sha256,
            "pipeline_run_id": request.run_id,
            "archives": [lineage.version_of(a.name) for a in replaced],
        },
        authorisation=authorisation,
        custody=custody,
        plan=plan,
        serving_namespace=serving_namespace,
        applied=applied,
        key=key,
        event="ledger_appended",
    )


def _rollback(request: Request, deployer: Deployer) -> dict[str, Any]:
    platform = deployer.platform_for(request.namespace)
    if not request.reason.strip():
        raise DeploymentRefused("a rollback needs a reason (spec.reason)")
    ledger_uri = platform.ledger_uri or deployer.ledger_uri
    if not ledger_uri:
        raise LedgerError("no deployment ledger configured: the platform names none")
    ledger = ledger_from_uri(ledger_uri)
    done = _existing(ledger, request)
    verifier = deployer.verifier or Verifier(deployer.lineage)
    try:
        if done is not None:
            custody = verifier.verify_model(
                done["model_sha256"], run_id=done["pipeline_run_id"], through="approval"
            )
            return _status(
                request,
                done,
                ledger,
                applies=deployer.applier.applies,
                custody_sha256=custody.sha256(),
            )
        current, target = rollback_target(
            ledger.entries(), request.model_name, platform.environment
        )
        # The restored model's own chain, through its deployment (which re-reads its ledger
        # entry), and its approval under today's platform rules.
        verifier.verify_model(
            target["model_sha256"], run_id=target["pipeline_run_id"], through="deployment"
        )
        custody = verifier.verify_model(
            target["model_sha256"], run_id=target["pipeline_run_id"], through="approval"
        )
        authorisation = authorise_deployment(
            verifier, custody, platform, ledger_uri=deployer.ledger_uri
        )
    finally:
        if deployer.verifier is None:
            verifier.close()
    settings = authorisation.settings
    plan = core.rollout_plan("full", 0)
    serving_namespace = deployer.config.serving_namespace(settings.environment)
    served = ServedModel(
        name=request.model_name,
        sha256=target["model_sha256"],
        uri=target["model_uri"],
        run_id=target["pipeline_run_id"],
        request=request.ref,
    )
    applied = _roll_out(deployer, plan, served, serving_namespace)
    key = sha256_json({"rollback": request.ref, "uid": request.uid, "from": current["sequence"]})
    return _append_rollout(
        request,
        deployer,
        ledger,
        {
            "action": ROLLBACK,
            "model_name": request.model_name,
            "model_version": target["model_version"],
            "model_sha256": target["model_sha256"],
            "model_uri": target["model_uri"],
            "approval_sha256": target["approval_sha256"],
            "pipeline_run_id": target["pipeline_run_id"],
            "archives": [current["model_version"]],
            "rolled_back_from": current["model_sha256"],
            "rolled_back_sequence": current["sequence"],
            "restores_sequence": target["sequence"],
            "requested_by": request.requested_by,
            "reason": request.reason,
        },
        authorisation=authorisation,
        custody=custody,
        plan=plan,
        serving_namespace=serving_namespace,
        applied=applied,
        key=key,
        event="rolled_back",
    )
