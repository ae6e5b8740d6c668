"""The production model's reference data, found through MLMD: the Model artefact whose `stage`
is `production` (the most recently updated one), and the test split of the feature set its
training execution read."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from aiact import lineage
from aiact.featureset import load_feature_set
from aiact.hashing import sha256_path
from aiact.lineage import ArtifactRecord, LineageStore, properties_of
from aiact.model_package import load_model_package
from aiact.queries import production_models
from aiact.storage import StorageError, fetch_tree
from aiact.transform import FittedTransform
from components.evaluation.core import NoProductionReference, ProductionReference

NO_PRODUCTION_MODEL = "no production model in the metadata store (first deployment)"


def _production_models(store: LineageStore, model_name: str = "") -> list[mlmd_pb.Artifact]:
    """The Models whose stage is `production` (of `model_name`, when given), latest-updated
    first: one indexed filter query, not a list of every model in the store."""
    found = production_models(store, model_name)
    return sorted(found, key=lambda a: (a.last_update_time_since_epoch, a.id), reverse=True)


def production_model(
    store: LineageStore, model_name: str = "", use_case: str = ""
) -> mlmd_pb.Artifact | None:
    """The current production model of `model_name` and `use_case` (any, when empty): the
    latest-updated Model whose stage is `production` and whose training feature set was made
    for that use case."""
    for model in _production_models(store, model_name):
        if not use_case or _use_case_of(store, model) == use_case:
            return model
    return None


def _use_case_of(store: LineageStore, model: mlmd_pb.Artifact) -> str:
    """The use case a model was trained for (recorded on its training feature set)."""
    feature_set = _training_feature_set(store, model)
    return str(properties_of(feature_set).get("use_case", "")) if feature_set else ""


def _others(store: LineageStore) -> str:
    """The production models in the store, as `name (use case)`, for a mismatch message."""
    found = sorted(
        f"{properties_of(a).get('model_name', '?')} ({_use_case_of(store, a) or 'no use case'})"
        for a in _production_models(store)
    )
    return ", ".join(found)


def _training_feature_set(store: LineageStore, model: mlmd_pb.Artifact) -> mlmd_pb.Artifact | None:
    """The feature set read by the completed execution that produced `model`."""
    mlmd = store.store
    producers = [
        e.execution_id
        for e in mlmd.get_events_by_artifact_ids([model.id])
        if e.type == mlmd_pb.Event.OUTPUT
    ]
    for execution in mlmd.get_executions_by_id(producers) if producers else []:
        if execution.last_known_state != mlmd_pb.Execution.COMPLETE:
            continue
        for event in mlmd.get_events_by_execution_ids([execution.id]):
            if event.type == mlmd_pb.Event.INPUT and event.path.steps[0].key == "feature_set":
                [artifact] = mlmd.get_artifacts_by_id([event.artifact_id])
                return artifact
    return None


def production_reference(
    store: LineageStore, transform: FittedTransform, model_name: str = "", use_case: str = ""
) -> tuple[ProductionReference | NoProductionReference, list[ArtifactRecord]]:
    """The production reference of the same model name and use case (through the
    candidate's `transform`) and the artefacts it came from, to record as inputs; or why there
    is none. Production models of other names or use cases are never compared with."""
    model = production_model(store, model_name, use_case)
    if model is None:
        others = _others(store) if model_name or use_case else ""
        if not others:
            return NoProductionReference(NO_PRODUCTION_MODEL), []
        return NoProductionReference(
            f"no production model {model_name or '(any name)'} of use case "
            f"{use_case or '(any)'} (first deployment of this model and use case); production "
            f"models of other names or use cases are not compared: {others}"
        ), []
    version = str(properties_of(model).get("version", model.name[:16]))
    feature_set = _training_feature_set(store, model)
    if feature_set is None:
        return NoProductionReference(
            f"production model {version} has no recorded training feature set", True
        ), []
    with tempfile.TemporaryDirectory() as scratch:
        try:
            model_dir = fetch_tree(model.uri, Path(scratch) / "model")
            features_dir = fetch_tree(feature_set.uri, Path(scratch) / "features")
        except StorageError as exc:
            return NoProductionReference(
                f"production model {version}: reference not readable: {exc}", True
            ), []
        if sha256_path(model_dir) != model.name or sha256_path(features_dir) != feature_set.name:
            return NoProductionReference(
                f"production model {version}: stored content differs from its recorded hash",
                True,
            ), []
        test = load_feature_set(features_dir)["test"]
        package = load_model_package(model_dir)
    reference = ProductionReference(
        model_version=version,
        feature_set_uri=feature_set.uri,
        features=transform.apply(test.raw),
        scores=package.predict_proba(test.features),
    )
    records = [
        ArtifactRecord(lineage.MODEL, model.uri, model.name, "production_model"),
        ArtifactRecord(
            lineage.FEATURE_SET, feature_set.uri, feature_set.name, "production_reference"
        ),
    ]
    return reference, records
