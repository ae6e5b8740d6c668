"""Whether a verified chain of custody may be deployed: the approval re-derived from its recorded
decisions and re-read from the approval backend, under the platform's rules.

One function for every caller: the deployer controller before it touches serving or the ledger,
and the deployment stage (defence in depth, and the whole check when it reconciles in-process
without a cluster). The caller verifies the chain first (`Verifier.verify_model(...,
through="approval")`); this module decides on the approval that chain holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiact.approval import backend_from_uri, to_dict
from aiact.custody import Custody, Verifier
from aiact.evidence import acknowledgements_required
from aiact.platform import PlatformConfig, RunSettings, resolve_run_settings
from components.deployment import core


@dataclass(frozen=True)
class Authorisation:
    """A deployment the approval authorises.

    Attributes:
        decision: The settled decision (core.authorise): approvers, reason, kind.
        settings: The platform's settings for the deployment (environment, ledger, ...).
        approval: The approval artefact (request and decisions) as the chain recorded it.
    """

    decision: dict[str, Any]
    settings: RunSettings
    approval: dict[str, Any]


def live_approval(backend_uri: str, document: dict[str, Any]) -> None:
    """Re-read the request and its decisions from the approval backend the approval stage used
    and refuse an approval artefact that differs from what the backend holds (on a cluster:
    decisions admitted under the approvers' own identities).

    Raises:
        DeploymentRefused: when the artefact's request or decisions differ from the backend's.
    """
    backend = backend_from_uri(backend_uri)
    name = str((document.get("request") or {}).get("name", ""))
    live_request = json.loads(json.dumps(to_dict(backend.request(name))))
    if any(document["request"].get(k) != v for k, v in live_request.items()):
        raise core.DeploymentRefused(
            f"approval artefact for {name!r} differs from the request held by {backend_uri}"
        )
    live = [json.loads(json.dumps(to_dict(d))) for d in backend.decisions(name)]
    if not core.same_decisions(document, live):
        raise core.DeploymentRefused(
            f"approval artefact for {name!r} lists decisions the approval backend "
            f"({backend_uri}) does not hold"
        )


def authorise_deployment(
    verifier: Verifier,
    custody: Custody,
    platform: PlatformConfig,
    *,
    ledger_uri: str = "",
) -> Authorisation:
    """Authorise deploying the model of a verified chain (through approval) under `platform`.

    Checks, in order: the approval backend the approval stage recorded is still the platform's;
    the approval is for this model and this run, N distinct humans approved (no demo decision
    outside development), every approver made the acknowledgements the request requires, the
    request asked for every acknowledgement the evaluation requires, and the approval backend
    holds exactly the recorded request and decisions.

    Args:
        verifier: The verifier that verified `custody` (reads the artefacts).
        custody: The model's chain through approval.
        platform: The platform configuration of the namespace that asked for the deployment.
        ledger_uri: The run's ledger where the platform names none (development only).

    Returns:
        The authorisation.

    Raises:
        DeploymentRefused, PlatformError, ApprovalError: one line naming what is refused.
    """
    approval_link = custody.links["approval"]
    settings = resolve_run_settings(
        platform,
        ledger_uri=ledger_uri,
        approval_backend=str(approval_link.properties.get("approval_backend", "")),
    )
    document = verifier.document(approval_link.outputs["approval"])
    decision = core.authorise(
        document,
        custody.model_sha256,
        run_id=custody.run_id,
        environment=settings.environment,
        required_approvals=settings.required_approvals,
        demo_allowed=settings.demo_allowed,
    )
    evaluation = verifier.document(custody.links["evaluation"].outputs["evaluation_report"])
    omitted = sorted(
        set(acknowledgements_required(evaluation))
        - set(document["request"].get("acknowledgements_required") or ())
    )
    if omitted:
        raise core.DeploymentRefused(
            f"the approval request omits findings of the evaluation every approver must "
            f"acknowledge: {', '.join(omitted)}"
        )
    live_approval(settings.approval_backend, document)
    return Authorisation(decision=decision, settings=settings, approval=document)
