"""Reuse of a completed stage execution: how a resumed (or resubmitted) run skips the stages it
already completed, without a silent cache hit.

A reusable stage declares its inputs as usual, then asks `StageContext.reuse(...)`. Its
**reuse key** is the SHA-256 of a canonical document holding everything its outputs depend on:

- the stage, and the content digest of every input by role (the gate's verdict of the stage
  before is left out: it names its own run, and the new run's custody check proves it anyway);
- the stage's parameters (seed, hyperparameters, resolved training device, URIs it records);
- the gate policy's hash and the code commit the run context confirmed;
- the image's identity. A pod cannot see its image's digest, so the image is identified by what
  it can see: the package version, the hash of the installed distributions (`name==version`
  of every one, i.e. what the lock `requirements/constraints.txt` resolved into), the lock
  file's own hash where the image or checkout ships it (`AIACT_LOCK_SHA256`, else the checkout's
  `requirements/constraints.txt`, else ''), and the hash of the package's own source files
  (which also tells two builds of a `-dirty` commit apart).

When a COMPLETE execution of the same stage with the same key exists (any run), whose recorded
inputs agree with its key document and whose outputs still re-hash to their records, its outputs
are copied into this task's output paths and a NEW execution is recorded in this run with the
same input and output artefacts, its evidence properties (verdict, breaches, statistics, ...)
and `reused_execution_id`, `reused_from_run`, `reuse_key`: the trail shows the reuse. The new
run's custody verifier checks it exactly like a computed execution (same artefacts, re-hashed);
a reused breached gate keeps its `breached` verdict, which its (re-run) verdict task judges.

Only data preparation, feature engineering and training reuse. Never: evaluation (it compares
with whatever is in production now), registration (its record names its run and it promotes
the model in the registry), integration testing (latency of a live server), approval (a human
decision on this run), deployment (changes production); the gates' verdict tasks are cheap and
their verdict names their run, so they are simply re-run. ``AIACT_REUSE=off`` turns reuse off
(keys are still recorded).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from ml_metadata import metadata_store as mlmd
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from aiact.hashing import canonical_json, sha256_bytes, sha256_file, sha256_path
from aiact.lineage import (
    GATE_VERDICT,
    OBJECT_URI,
    ArtifactRecord,
    LineageStore,
    PropertyValue,
    properties_of,
    version_of,
)
from aiact.observability import log_event
from aiact.storage import fetch_tree, place

REUSABLE_STAGES = ("data_preparation", "feature_engineering", "training")
NEVER_REUSED = {
    "evaluation": "it compares the model with whatever is in production now",
    "registration": "its record names its run and it promotes the model in the registry",
    "integration_testing": "it measures a live model server (latency)",
    "approval": "it is a human decision on this run",
    "deployment": "it changes production",
}
REUSE_ENV = "AIACT_REUSE"
LOCK_ENV = "AIACT_LOCK_SHA256"
PACKAGE = "aiact-pipelines"
# Execution properties a reuse records (the evidence bundle should show them).
REUSED_EXECUTION_ID = "reused_execution_id"
REUSED_FROM_RUN = "reused_from_run"
REUSE_KEY = "reuse_key"
REUSE_KEY_JSON = "reuse_key_json"
REUSE_FILES = "reuse_files"
# Properties of the original execution that belong to the new execution's own run, not copied.
_OWN = frozenset(
    {
        "stage",
        "run_id",
        "started_at_ms",
        "duration_s",
        "outcome",
        "error",
        "platform_sha256",
        "platform_source",
        "claimed_code_commit",
        "custody_through",
        "custody_sha256",
        REUSE_KEY,
        REUSE_KEY_JSON,
        REUSED_EXECUTION_ID,
        REUSED_FROM_RUN,
        REUSE_FILES,
    }
)


class ReuseError(RuntimeError):
    """A stage asked for reuse that it may not have."""


def enabled() -> bool:
    """Whether reuse is on (``AIACT_REUSE`` not off/0/false/no)."""
    return os.environ.get(REUSE_ENV, "on").strip().lower() not in ("off", "0", "false", "no")


_PACKAGES = ("aiact", "components", "pipelines")


def installed_distributions() -> list[str]:
    """Every installed distribution as its metadata folder's name (`name-version.dist-info`),
    sorted, the project's own excluded: read from the folder names on `sys.path` (reading
    every METADATA file costs about a second per process)."""
    own = PACKAGE.replace("-", "_")
    found: set[str] = set()
    for entry in sys.path:
        folder = Path(entry or ".")
        if not folder.is_dir():
            continue
        for child in folder.iterdir():
            name = child.name
            if name.endswith((".dist-info", ".egg-info")) and not name.lower().startswith(own):
                found.add(name.lower())
    return sorted(found)


@functools.lru_cache(maxsize=1)
def image_identity() -> dict[str, str]:
    """What identifies the code and environment this process runs (see the module doc)."""
    try:
        version = metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        version = "unknown"
    distributions = installed_distributions()
    root = Path(__file__).resolve().parent.parent
    lock = os.environ.get(LOCK_ENV, "")
    lock_file = root / "requirements" / "constraints.txt"
    if not lock and lock_file.is_file():
        lock = sha256_file(lock_file)
    entries = []
    for package in _PACKAGES:
        folder = root / package
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                entries.append(f"{path.relative_to(root).as_posix()}\0{sha256_file(path)}")
    return {
        "package_version": version,
        "environment_sha256": sha256_bytes("\n".join(distributions).encode()),
        "lock_sha256": lock,
        "source_sha256": sha256_bytes("\n".join(entries).encode()),
    }


def key_document(
    *,
    stage: str,
    inputs: Mapping[str, str],
    parameters: Mapping[str, Any],
    policy_sha256: str,
    code_commit: str,
    image: Mapping[str, str],
) -> dict[str, Any]:
    """The canonical document a reuse key hashes."""
    return {
        "stage": stage,
        "inputs": dict(sorted(inputs.items())),
        "parameters": json.loads(canonical_json(dict(parameters))),
        "policy_sha256": policy_sha256,
        "code_commit": code_commit,
        "image": dict(sorted(image.items())),
    }


def key_inputs(records: list[ArtifactRecord]) -> dict[str, str]:
    """The input digests a key covers, by role (not the gate verdict of the stage before)."""
    return {r.role: r.content_sha256 for r in records if r.type_name != GATE_VERDICT}


@dataclass(frozen=True)
class Reused:
    """A reused execution: the one copied (`execution_id`, in `run_id`) and the execution that
    computed the outputs originally (`origin_id`, in `origin_run`)."""

    execution_id: int
    run_id: str
    origin_id: int
    origin_run: str
    properties: dict[str, PropertyValue]
    outputs: list[ArtifactRecord]
    output_properties: dict[str, dict[str, PropertyValue]]


def _run_of(store: Any, execution_id: int) -> str:
    contexts = store.get_contexts_by_execution(execution_id)
    return contexts[0].name if contexts else ""


def candidates(lineage: LineageStore, stage: str, key: str) -> list[mlmd_pb.Execution]:
    """COMPLETE executions of `stage` recorded under `key`, newest first."""
    query = (
        f"type = 'aiact.{stage}' AND last_known_state = COMPLETE AND "
        f"custom_properties.{REUSE_KEY}.string_value = '{key}'"
    )
    found = lineage.store.get_executions(list_options=mlmd.ListOptions(filter_query=query))
    return sorted(found, key=lambda e: e.id, reverse=True)


def _readable(artifact: mlmd_pb.Artifact, scratch: Path) -> Path | None:
    """A local copy of the artefact's content that re-hashes to its record, from its `uri`
    or its content-addressed object; None when neither does."""
    locations = [artifact.uri, str(properties_of(artifact).get(OBJECT_URI, ""))]
    for index, uri in enumerate(dict.fromkeys(u for u in locations if u)):
        try:
            local = fetch_tree(uri, scratch / f"{artifact.id}-{index}")
            if sha256_path(local) == artifact.name:
                return local
        except Exception:  # any storage backend's failure: try the next location
            continue
    return None


def _put(source: Path, target: Path) -> None:
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    place(source, target)


def try_reuse(
    lineage: LineageStore,
    *,
    stage: str,
    key: str,
    document: Mapping[str, Any],
    targets: Mapping[str, Path],
) -> Reused | None:
    """Copy the outputs of the newest usable execution recorded under `key` into `targets`
    (role or file name -> this task's output path) and describe it; None when there is none."""
    store = lineage.store
    types = {t.id: t.name for t in store.get_artifact_types()}
    for execution in candidates(lineage, stage, key):
        props = properties_of(execution)
        if props.get("outcome") != "completed":
            continue
        events = store.get_events_by_execution_ids([execution.id])
        artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
        inputs: dict[str, str] = {}
        outputs: dict[str, mlmd_pb.Artifact] = {}
        for event in events:
            role = event.path.steps[0].key if event.path.steps else ""
            artifact = artifacts[event.artifact_id]
            if event.type == mlmd_pb.Event.OUTPUT:
                outputs[role] = artifact
            elif types.get(artifact.type_id) != GATE_VERDICT:
                inputs[role] = artifact.name
        recorded = str(props.get(REUSE_KEY_JSON, ""))
        if (
            inputs != dict(document["inputs"])
            or not recorded
            or sha256_bytes(recorded.encode()) != key
            or json.loads(recorded) != json.loads(canonical_json(dict(document)))
        ):
            log_event(stage, "reuse_refused", execution_id=execution.id, why="key mismatch")
            continue
        if set(outputs) - set(targets):
            unmapped = sorted(set(outputs) - set(targets))
            log_event(stage, "reuse_refused", execution_id=execution.id, unmapped=unmapped)
            continue
        files = json.loads(str(props.get(REUSE_FILES, "") or "{}"))
        wanted = dict(outputs)
        for name, entry in files.items():
            if name not in outputs and name in targets:
                wanted[name] = mlmd_pb.Artifact(uri=str(entry["uri"]), name=str(entry["sha256"]))
        with tempfile.TemporaryDirectory(prefix="aiact-reuse-") as scratch:
            local = {name: _readable(a, Path(scratch)) for name, a in wanted.items()}
            missing = sorted(name for name, path in local.items() if path is None)
            if missing:
                log_event(stage, "reuse_refused", execution_id=execution.id, unreadable=missing)
                continue
            for name, path in local.items():
                assert path is not None
                _put(path, targets[name])
        for role, artifact in outputs.items():
            if sha256_path(targets[role]) != artifact.name:
                raise ReuseError(
                    f"reused {role} of execution {execution.id} does not hash to its record "
                    "after copying"
                )
        origin_id = int(props.get(REUSED_EXECUTION_ID, 0) or 0) or execution.id
        origin_run = str(props.get(REUSED_FROM_RUN, "")) or _run_of(store, execution.id)
        return Reused(
            execution_id=execution.id,
            run_id=_run_of(store, execution.id),
            origin_id=origin_id,
            origin_run=origin_run,
            properties={k: v for k, v in props.items() if k not in _OWN},
            outputs=[
                ArtifactRecord(
                    types.get(artifact.type_id, ""),
                    str(targets[role]),
                    artifact.name,
                    role,
                    {},
                )
                for role, artifact in outputs.items()
            ],
            output_properties={
                role: {
                    k: v
                    for k, v in properties_of(artifact).items()
                    if k not in ("content_sha256", OBJECT_URI, "first_uri")
                }
                for role, artifact in outputs.items()
            },
        )
    return None


def _training_figures(report: Mapping[str, Any]) -> dict[str, PropertyValue]:
    """What the training executor returns besides its model's properties (the component logs
    them as KFP metrics), read back from its training report."""
    best = report["history"][int(report["best_epoch"]) - 1]
    return {
        "train_loss": round(float(best["train_loss"]), 6),
        "duration_s": float(report["duration_s"]),
        "peak_rss_mb": float(report["environment"]["peak_rss_mb"]),
    }


# Figures a stage's executor returns that only its report holds: stage -> (report role, reader).
REPORT_FIGURES = {"training": ("training_report", _training_figures)}


def result_of(
    reused: Reused, primary: str, stage: str = "", targets: Mapping[str, Path] | None = None
) -> dict[str, PropertyValue]:
    """What the executor returns for a reused execution (KFP output metadata): the primary
    output's recorded properties and version (with the figures only its report holds, e.g.
    training's loss and duration), or only the verdict when it was not produced."""
    figures: dict[str, PropertyValue] = {}
    if stage in REPORT_FIGURES and targets:
        role, reader = REPORT_FIGURES[stage]
        if role in targets and targets[role].is_file():
            figures = reader(json.loads(targets[role].read_text()))
    produced = {record.role: record for record in reused.outputs}
    base: dict[str, PropertyValue]
    if primary in produced:
        base = {
            **reused.output_properties[primary],
            "version": version_of(produced[primary].content_sha256),
        }
    else:
        base = {"verdict": reused.properties.get("verdict", "")}
    return {**base, **figures, REUSED_EXECUTION_ID: reused.origin_id}


def key_of(document: Mapping[str, Any]) -> tuple[str, str]:
    """The key of a key document and the document's canonical JSON."""
    text = canonical_json(dict(document)).decode()
    return sha256_bytes(text.encode()), text


__all__ = [
    "NEVER_REUSED",
    "REUSABLE_STAGES",
    "ReuseError",
    "Reused",
    "enabled",
    "image_identity",
    "key_document",
    "key_inputs",
    "key_of",
    "result_of",
    "try_reuse",
]
