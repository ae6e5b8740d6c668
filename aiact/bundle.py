"""Per-run evidence bundle: every artefact and execution of a pipeline run, mapped to the AI Act
article it evidences, with content hashes, copied into one folder an auditor can archive."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from aiact import lineage
from aiact.custody import CHAIN, CustodyError, Verifier
from aiact.evidence import write_atomic
from aiact.hashing import sha256_file
from aiact.lineage import LineageStore, properties_of

MAX_COPY_BYTES = 5 * 2**20

ARTICLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "Art. 9": (
        "Risk management system: declared thresholds and every gate verdict",
        (
            lineage.GATE_POLICY,
            lineage.DATA_VALIDATION_REPORT,
            lineage.EVALUATION_REPORT,
            lineage.INTEGRATION_TEST_REPORT,
        ),
    ),
    "Art. 10": (
        "Data and data governance: documented sources, quality checks, versioned data",
        (
            lineage.RAW_DATASET,
            lineage.DATA_CARD,
            lineage.DATA_VALIDATION_REPORT,
            lineage.DATASET,
            lineage.FEATURE_SET,
            lineage.FEATURE_TRANSFORM,
        ),
    ),
    "Art. 11 / Annex IV": (
        "Technical documentation: code, pipeline spec, training and evaluation records",
        (
            lineage.TRAINING_REPORT,
            lineage.MODEL,
            lineage.EVALUATION_REPORT,
            lineage.MODEL_REGISTRATION,
        ),
    ),
    "Art. 12": (
        "Record-keeping: executions with times and outcomes, deployment ledger entry",
        (lineage.DEPLOYMENT,),
    ),
    "Art. 14": ("Human oversight: the pre-deployment decision", (lineage.APPROVAL,)),
    "Art. 15": (
        "Accuracy, robustness: holdout evaluation and integration tests",
        (lineage.EVALUATION_REPORT, lineage.INTEGRATION_TEST_REPORT),
    ),
}


def _artifact_entry(
    verifier: Verifier, artifact: mlmd_pb.Artifact, type_name: str, files: Path
) -> dict[str, Any]:
    """The manifest entry of one artefact; its content is re-hashed first, so an artefact
    edited after it was recorded stops the bundle instead of being copied."""
    props = properties_of(artifact)
    entry: dict[str, Any] = {
        "type": type_name,
        "uri": artifact.uri,
        "sha256": props.get("content_sha256", ""),
        "properties": {k: v for k, v in props.items() if k not in ("policy_json",)},
    }
    verifier.check_content(artifact)
    entry["verified"] = True
    if "policy_json" in props:
        target = files / f"GatePolicy-{props.get('version', artifact.id)}.json"
        write_atomic(target, str(props["policy_json"]))
        entry["copy"] = target.name
        return entry
    source = verifier.local_path(artifact)
    if source.is_file() and source.stat().st_size <= MAX_COPY_BYTES:
        suffix = source.suffix or _suffix(source)
        target = files / f"{type_name.removeprefix('aiact.')}-{props.get('version', artifact.id)}"
        target = target.with_name(target.name + suffix)
        shutil.copyfile(source, target)
        entry["copy"] = target.name
        entry["copy_sha256"] = sha256_file(target)
        if entry["copy_sha256"] != entry["sha256"]:
            raise CustodyError(f"copy of {type_name} {entry['sha256'][:12]} differs from it")
    return entry


def _suffix(path: Path) -> str:
    """An extension for an evidence file that has none (KFP output files have none)."""
    head = path.read_bytes()[:64].lstrip()
    return ".json" if head.startswith((b"{", b"[")) else ""


def _custody(verifier: Verifier, run_id: str) -> dict[str, Any]:
    """The chain-of-custody verdict of the run's model, through the furthest stage it reached
    (a halted run's chain is reported as incomplete, with the reason)."""
    links = verifier.links_of_run(run_id)
    produced = [link for link in links if link.stage == "training" and link.output("model")]
    if not produced:
        return {"verified": False, "reason": "the run produced no model"}
    model = produced[-1].output("model")
    reached = [link.stage for link in links]  # attempted: a halted stage breaks the chain
    through = max((s for s in reached if s in CHAIN), key=CHAIN.index, default="training")
    try:
        custody = verifier.verify_model(model, run_id=run_id, through=through)
    except CustodyError as exc:
        return {"verified": False, "model_sha256": model, "through": through, "reason": str(exc)}
    return {
        "verified": True,
        "custody_sha256": custody.sha256(),
        "checks": custody.checks,
        **custody.summary(),
    }


def write_bundle(store: LineageStore, run_id: str, out_dir: Path) -> dict[str, Any]:
    """Write `manifest.json` and copies of the run's small evidence files into `out_dir`.

    Every artefact is re-hashed from storage before it is listed or copied: an edited report or
    model raises `CustodyError` naming it. The manifest also carries the run's chain-of-custody
    verdict (`custody`)."""
    context = store.run_context(run_id)
    files = out_dir / "evidence"
    files.mkdir(parents=True, exist_ok=True)
    type_names = {t.id: t.name for t in store.store.get_artifact_types()}
    with Verifier(store) as verifier:
        artifacts = [
            _artifact_entry(verifier, a, type_names[a.type_id], files)
            for a in sorted(store.store.get_artifacts_by_context(context.id), key=lambda a: a.id)
        ]
        custody = _custody(verifier, run_id)
    articles = {}
    for article, (title, types) in ARTICLES.items():
        evidence = [a for a in artifacts if a["type"] in types]
        missing = sorted(set(types) - {a["type"] for a in evidence})
        articles[article] = {"title": title, "evidence": evidence, "missing": missing}
    manifest = {
        "run_id": run_id,
        "run": properties_of(context),
        "custody": custody,
        "executions": [
            {
                "stage": e.stage,
                "state": e.state,
                **{
                    k: e.properties[k]
                    for k in ("started_at_ms", "duration_s", "outcome", "error", "gate_breaches")
                    if k in e.properties
                },
            }
            for e in store.executions_of_run(run_id)
        ],
        "articles": articles,
    }
    write_atomic(out_dir / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest
