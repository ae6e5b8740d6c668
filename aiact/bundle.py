"""Per-run evidence bundle: every artefact and execution of a pipeline run, mapped to the AI Act
article it evidences, with content hashes, copied into one folder an auditor can archive."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from aiact import lineage
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
    store: LineageStore, artifact: mlmd_pb.Artifact, type_name: str, files: Path
) -> dict[str, Any]:
    props = properties_of(artifact)
    entry: dict[str, Any] = {
        "type": type_name,
        "uri": artifact.uri,
        "sha256": props.get("content_sha256", ""),
        "properties": {k: v for k, v in props.items() if k not in ("policy_json",)},
    }
    source = Path(artifact.uri)
    if source.is_file() and source.stat().st_size <= MAX_COPY_BYTES:
        target = files / f"{type_name.removeprefix('aiact.')}-{props.get('version', artifact.id)}"
        shutil.copyfile(source, target)
        entry["copy"] = target.name
        entry["copy_sha256"] = sha256_file(target)
    if "policy_json" in props:
        target = files / f"GatePolicy-{props.get('version', artifact.id)}.json"
        target.write_text(str(props["policy_json"]))
        entry["copy"] = target.name
    return entry


def write_bundle(store: LineageStore, run_id: str, out_dir: Path) -> dict[str, Any]:
    """Write `manifest.json` and copies of the run's small evidence files into `out_dir`."""
    context = store.run_context(run_id)
    files = out_dir / "evidence"
    files.mkdir(parents=True, exist_ok=True)
    type_names = {t.id: t.name for t in store.store.get_artifact_types()}
    artifacts = [
        _artifact_entry(store, a, type_names[a.type_id], files)
        for a in sorted(store.store.get_artifacts_by_context(context.id), key=lambda a: a.id)
    ]
    articles = {}
    for article, (title, types) in ARTICLES.items():
        evidence = [a for a in artifacts if a["type"] in types]
        missing = sorted(set(types) - {a["type"] for a in evidence})
        articles[article] = {"title": title, "evidence": evidence, "missing": missing}
    manifest = {
        "run_id": run_id,
        "run": properties_of(context),
        "executions": [
            {
                "stage": e.stage,
                "state": e.state,
                **{
                    k: e.properties[k]
                    for k in ("started_at_ms", "duration_s", "error", "gate_breaches")
                    if k in e.properties
                },
            }
            for e in store.executions_of_run(run_id)
        ],
        "articles": articles,
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest
