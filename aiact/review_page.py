"""The approval review page (AI Act Art. 14): one self-contained HTML page per approval request
that shows an approver what they are asked to authorise, rendered by the approval stage BEFORE
it raises the request, whose immutable spec then carries the page's URI and SHA-256.

It holds the model card, every gate's verdict with its evidence (data validation, feature
checks, evaluation: performance, fairness per group with confusion matrices and confidence
intervals, robustness, calibration, drift; integration tests), the ROC and calibration plots,
the comparison with the current production model, the gate policy's hash and where it is
stricter than the platform floor, the acknowledgements every approver must make, and the exact
commands to approve or reject.

Where it is served: the approval task's `review_page` HTML output (the KFP UI's artifact viewer
shows it once the task has finished) and, while the request is pending, the object store path
of that output, which the stage writes itself (`publish`), since KFP uploads a task's outputs
only when it returns. `aiact approvals --review NAME --out DIR` fetches it from there and
refuses a copy whose hash differs from the request's (`fetch_verified`).
"""

from __future__ import annotations

import math
import shlex
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from aiact import pages, plots
from aiact.hashing import sha256_path

REVIEW_PAGE = "aiact.ApprovalReviewPage"
KUBERNETES = "kubernetes://"
# The evaluation's fairness rates per group, with their captions.
GROUP_RATES = {
    "selection_rate": "selection rate",
    "true_positive_rate": "true positive rate",
    "false_positive_rate": "false positive rate",
}
CLASS_LABELS = ("0 (unfavourable)", "1 (favourable)")


class ReviewPageError(ValueError):
    """A review page cannot be published, fetched or verified."""


@dataclass(frozen=True)
class GateEvidence:
    """One gate's verdict and the report behind it."""

    stage: str
    title: str
    verdict: str
    execution_id: int
    report_uri: str
    report_sha256: str
    report: Mapping[str, Any]

    @property
    def checks(self) -> list[Mapping[str, Any]]:
        """The gate's checks as recorded."""
        return list((self.report.get("gate") or {}).get("checks") or [])

    @property
    def breaches(self) -> list[str]:
        """Names of the checks that did not pass."""
        return [str(c.get("name")) for c in self.checks if not c.get("passed")]


@dataclass(frozen=True)
class ReviewEvidence:
    """Everything the page shows, gathered (and custody-verified) by the approval stage."""

    request: Mapping[str, Any]
    backend_uri: str
    gates: Sequence[GateEvidence]
    evaluation: Mapping[str, Any]
    integration: Mapping[str, Any]
    model_card: Mapping[str, Any] | None = None
    model_card_sha256: str = ""
    production: Mapping[str, Any] = field(default_factory=dict)
    acknowledgement_details: Mapping[str, str] = field(default_factory=dict)
    custody_sha256: str = ""


def decision_commands(
    name: str, backend_uri: str, acknowledgements: Sequence[str] = ()
) -> dict[str, str]:
    """The exact commands an approver runs (see aiact/cli.py), by purpose: `approve`,
    `reject`, `verify` (fetch this page and check its hash), and, for a kubernetes:// backend,
    the kubectl plugin's `kubectl_approve`, `kubectl_reject` and `kubectl_get`."""
    quoted = shlex.quote(name)
    where = f"--approvals {shlex.quote(backend_uri)}"
    acknowledge = "".join(f" --acknowledge {shlex.quote(a)}" for a in acknowledgements)
    commands = {
        "approve": f"aiact approve {quoted} {where}{acknowledge} --reason 'REASON'",
        "reject": f"aiact reject {quoted} {where} --reason 'REASON'",
        "verify": f"aiact approvals --review {quoted} {where} --out DIR",
    }
    if backend_uri.startswith(KUBERNETES):
        namespace = backend_uri.removeprefix(KUBERNETES).strip("/")
        flag = f" -n {shlex.quote(namespace)}" if namespace else ""
        commands.update(
            kubectl_approve=f"kubectl aiact approve {quoted}{flag}{acknowledge} --reason 'REASON'",
            kubectl_reject=f"kubectl aiact reject {quoted}{flag} --reason 'REASON'",
            kubectl_get=f"kubectl get modelapproval {quoted}{flag} -o yaml",
        )
    return commands


def group_confusion(rates: Mapping[str, Any]) -> list[list[int]] | None:
    """A group's confusion matrix [[TN, FP], [FN, TP]] from its evaluation rates: positives and
    negatives (label counts) with the true and false positive rates (None if any is missing)."""
    try:
        positives, negatives = int(rates["positives"]), int(rates["negatives"])
        tpr, fpr = float(rates["true_positive_rate"]), float(rates["false_positive_rate"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (math.isfinite(tpr) and math.isfinite(fpr)):
        return None
    tp, fp = round(tpr * positives), round(fpr * negatives)
    return [[negatives - fp, fp], [positives - tp, tp]]


def _fairness_view(fairness: Mapping[str, Any]) -> dict[str, Any]:
    """Per attribute: its groups with their rates and confusion matrices, ready to render."""
    view: dict[str, Any] = {}
    for attribute, found in fairness.items():
        groups = found.get("by_group") or {}
        view[attribute] = {
            "metrics": {
                name: found.get(name)
                for name in (
                    "demographic_parity_difference",
                    "demographic_parity_ratio",
                    "equalized_odds_difference",
                )
            },
            "intervals": found.get("confidence_intervals") or {},
            "insufficient_data": list(found.get("insufficient_data") or []),
            "min_group_size": found.get("min_group_size"),
            "groups": {
                str(group): {"rates": rates, "confusion": group_confusion(rates)}
                for group, rates in groups.items()
            },
        }
    return view


def operating_point(sections: Mapping[str, Any]) -> tuple[float, float] | None:
    """(false positive rate, true positive rate) at the decision threshold, from the report's
    confusion matrix [[TN, FP], [FN, TP]]."""
    confusion = sections.get("confusion_matrix")
    if not isinstance(confusion, list) or len(confusion) != 2:
        return None
    [[tn, fp], [fn, tp]] = confusion
    if not (tn + fp and tp + fn):
        return None
    return fp / (tn + fp), tp / (tp + fn)


def _drift_view(drift: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per drift reference: prediction PSI and KS, and the most drifted feature."""
    rows = []
    for reference, values in drift.items():
        if not isinstance(values, Mapping) or not values.get("predictions"):
            continue
        features = values.get("features") or {}
        worst = max(features, key=lambda f: float(features[f].get("psi", 0.0)), default="")
        rows.append(
            {
                "reference": reference,
                "psi": values["predictions"].get("psi"),
                "ks": values["predictions"].get("ks"),
                "feature": worst,
                "max_feature_psi": features[worst].get("psi") if worst else None,
            }
        )
    return rows


def _figures(evaluation: Mapping[str, Any]) -> dict[str, str]:
    """ROC, calibration and per-group rate figures from the evaluation report."""
    sections = evaluation.get("sections") or {}
    drawn: dict[str, str] = {}
    performance = sections.get("performance") or {}
    auc = float(performance.get("roc_auc", math.nan))
    point = operating_point(sections)
    roc = sections.get("roc_curve") or sections.get("roc")
    if isinstance(roc, Mapping) and roc.get("fpr") and roc.get("tpr"):
        drawn["roc"] = plots.roc_curve(
            [float(v) for v in roc["fpr"]],
            [float(v) for v in roc["tpr"]],
            auc,
            "ROC curve of the holdout (evaluation report)",
            operating_point=point,
        )
    bins = (sections.get("calibration") or {}).get("reliability_curve")
    if bins:
        drawn["calibration"] = plots.reliability_curve(
            bins, "Reliability curve of the holdout, with the samples in each score bin"
        )
    for attribute, found in (sections.get("fairness") or {}).items():
        groups = found.get("by_group") or {}
        if not groups:
            continue
        names = list(groups)
        drawn[f"fairness:{attribute}"] = plots.grouped_bars(
            names,
            {
                label: [float(groups[g].get(rate, math.nan)) for g in names]
                for rate, label in GROUP_RATES.items()
            },
            f"Rates per {attribute} group on the holdout (group sizes: "
            + ", ".join(f"{g}={int(groups[g].get('count', 0))}" for g in names)
            + ")",
            value_label="rate",
            group_label=attribute,
        )
    return drawn


def render(evidence: ReviewEvidence) -> str:
    """The review page (deterministic: the same evidence renders to the same bytes)."""
    request = evidence.request
    acknowledgements = list(request.get("acknowledgements_required") or [])
    sections = evidence.evaluation.get("sections") or {}
    return pages.render(
        "review_page.html.j2",
        title=f"Approval review: {request['model_name']} {str(request['model_sha256'])[:16]}",
        request=request,
        commands=decision_commands(str(request["name"]), evidence.backend_uri, acknowledgements),
        backend_uri=evidence.backend_uri,
        gates=evidence.gates,
        card=evidence.model_card,
        model_card_sha256=evidence.model_card_sha256,
        evaluation=sections,
        evaluation_gate=evidence.evaluation.get("gate") or {},
        fairness=_fairness_view(sections.get("fairness") or {}),
        drift=_drift_view(sections.get("drift") or {}),
        operating_point=operating_point(sections),
        figures={k: pages.trusted(v) for k, v in _figures(evidence.evaluation).items()},
        integration=evidence.integration.get("sections") or {},
        production=evidence.production,
        acknowledgements=acknowledgements,
        acknowledgement_details=evidence.acknowledgement_details,
        custody_sha256=evidence.custody_sha256,
        class_labels=CLASS_LABELS,
        rates=GROUP_RATES,
    )


def _bucket_key(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.strip("/")


def is_remote(uri: str) -> bool:
    """Whether `uri` is in an object store (s3:// or KFP's minio://)."""
    return urlparse(uri).scheme in ("s3", "minio")


def publish(path: Path, uri: str) -> None:
    """Make the page readable at its URI now: a remote URI (s3:// or KFP's minio://, through
    the suite's S3 settings, aiact.storage) gets the file uploaded; a local one must already be
    the file itself.

    Raises:
        ReviewPageError: when the URI is neither, or the upload fails.
    """
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        target = Path(parsed.path if parsed.scheme else uri)
        if target.resolve() != path.resolve():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        return
    if not is_remote(uri):
        raise ReviewPageError(f"review page URI {uri!r}: use a path, s3:// or minio://")
    from minio.error import S3Error

    from aiact.storage import StorageError, s3_client

    bucket, key = _bucket_key(uri)
    try:
        s3_client().fput_object(bucket, key, str(path), content_type="text/html; charset=utf-8")
    except (S3Error, StorageError) as exc:
        raise ReviewPageError(f"cannot publish the review page to {uri}: {exc}") from exc


def fetch_verified(uri: str, sha256: str, out_dir: Path, name: str) -> Path:
    """Fetch a request's review page into `out_dir/<name>.html` after checking that its bytes
    hash to the request's `sha256`; nothing is written when they do not.

    Raises:
        ReviewPageError: when the request names no page, it cannot be fetched, or it differs.
    """
    from aiact.storage import StorageError, fetch

    if not uri or not sha256:
        raise ReviewPageError(f"approval {name!r} names no review page")
    source = "s3://" + uri.removeprefix("minio://") if uri.startswith("minio://") else uri
    with tempfile.TemporaryDirectory(prefix="aiact-review-") as scratch:
        try:
            path = fetch(source, Path(scratch))
        except StorageError as exc:
            raise ReviewPageError(f"review page of {name!r}: {exc}") from exc
        if not path.is_file():
            raise ReviewPageError(f"review page of {name!r} at {uri} is not a file")
        # Hash the copy that is kept, not the source, which could change in between.
        copy = Path(scratch) / "review-page.html"
        shutil.copyfile(path, copy)
        actual = sha256_path(copy)
        if actual != sha256:
            raise ReviewPageError(
                f"review page of {name!r} at {uri} hashes to {actual[:12]}, not the request's "
                f"{sha256[:12]}: it was altered after the request was raised; do not use it"
            )
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / f"{name}.html"
        shutil.move(copy, target)
    return target
