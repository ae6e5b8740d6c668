"""Chain of custody: proof, from ML Metadata and from the artefacts themselves, that a model
reached a stage through its OWN passed gates, in ONE pipeline run, in order.

One verifier serves every consumer: each stage before it acts (it verifies the part of the chain
it depends on), deployment before it touches the ledger, and the audit commands
(`aiact verify-model`, `aiact trace --verify`, the evidence bundle). For a model digest and a run
it proves:

- data preparation, feature engineering, training, evaluation, registration, integration
  testing, approval (and deployment) each have a COMPLETE execution in that run, recorded in
  that order, whose recorded outcome agrees with its state (a FAILED execution flipped to
  COMPLETE in the store still carries its failure outcome, and is refused);
- every link is bound to the next by the artefacts MLMD says it consumed AND by what the
  artefacts themselves name: the evaluation report names the model and feature set it
  evaluated, the registration names model, evaluation report and dataset, the integration
  report names model and registration, the approval request names model, evaluation report,
  integration report and run, the deployment names model and approval;
- every gate report passed, and one gate policy (hash) governs every gate of the run;
- every gate's verdict task judged THAT report passed (a gate's evidence execution completes
  even when its verdict is a breach, so its recorded verdict, not its state, is what counts),
  before the next stage, which consumed the verdict;
- no execution of the run FAILED, and no gate of the run recorded a breach;
- every artefact's content, re-hashed from storage now, equals its MLMD record.

A broken link fails with one line that names it, e.g. "evaluation report 9a38c1d2e4f5 evaluated
model be82aa01c3d4, not 262611aa9f0e".

The store is writable by pipeline pods, so this is defence in depth: it catches cross-wiring,
edited evidence and naive tampering, not a forger who rewrites the store and the files
consistently. The deployment ledger (written once per entry, outside the submitter's reach) and
the cluster's admission of approvals are the anchors; see README "Security model".
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from aiact import lineage
from aiact.hashing import sha256_json, sha256_path
from aiact.lineage import LineageError, LineageStore, PropertyValue, properties_of
from aiact.policy import BREACHED, PASSED

CHAIN = (
    "data_preparation",
    "feature_engineering",
    "training",
    "evaluation",
    "registration",
    "integration_testing",
    "approval",
    "deployment",
)
# The report each gate writes, whose verdict must be `passed`.
GATE_REPORTS = {
    "data_preparation": "validation_report",
    "feature_engineering": "feature_report",
    "evaluation": "evaluation_report",
    "integration_testing": "integration_report",
}
# The stage that consumes each gate's verdict (the verdict task's output), so the order holds by
# data dependencies; a gate's verdict task is the stage `<gate>_verdict`.
VERDICT_CONSUMERS = {
    "data_preparation": "feature_engineering",
    "feature_engineering": "training",
    "evaluation": "registration",
    "integration_testing": "approval",
}
VERDICT_SUFFIX = "_verdict"
# Every link of a verified chain in recording order: each gate followed by its verdict.
ORDER = tuple(
    name
    for stage in CHAIN
    for name in ((stage, stage + VERDICT_SUFFIX) if stage in GATE_REPORTS else (stage,))
)


def verdict_stage(gate: str) -> str:
    """The stage name of a gate's verdict task (also the role of the verdict it writes)."""
    return gate + VERDICT_SUFFIX


def base_stage(stage: str) -> str:
    """The chain stage a link belongs to (a verdict task belongs to its gate)."""
    return stage.removesuffix(VERDICT_SUFFIX)


# Outcomes (exception names recorded by aiact.stage) that are verdicts against a run.
VERDICTS = frozenset(
    {
        "GateFailed",
        "RegistrationRefused",
        "ApprovalRejected",
        "ApprovalExpired",
        "ApprovalError",
        "DeploymentRefused",
        "CustodyError",
        "LineageError",
        "PlatformError",
    }
)
# Stages that read the gate policy; one hash must govern them all.
POLICY_STAGES = ("data_preparation", "feature_engineering", "evaluation", "integration_testing")


class CustodyError(LineageError):
    """A link of the chain of custody is missing, cross-wired or altered."""


def short(digest: str) -> str:
    """The 12-hex-digit form of a digest used in messages."""
    return digest[:12] if digest else "(none)"


@dataclass(frozen=True)
class Link:
    """One stage execution of the chain with the artefacts it read and wrote, by role."""

    stage: str
    execution_id: int
    state: str
    properties: dict[str, PropertyValue]
    inputs: dict[str, mlmd_pb.Artifact]
    outputs: dict[str, mlmd_pb.Artifact]

    def input(self, role: str) -> str:
        """Content digest of an input role ('' when absent)."""
        artifact = self.inputs.get(role)
        return artifact.name if artifact is not None else ""

    def output(self, role: str) -> str:
        """Content digest of an output role ('' when absent)."""
        artifact = self.outputs.get(role)
        return artifact.name if artifact is not None else ""

    def artifacts(self) -> Iterable[tuple[str, mlmd_pb.Artifact]]:
        """Every artefact of the link with its role."""
        yield from self.inputs.items()
        yield from self.outputs.items()


@dataclass
class Custody:
    """A verified chain: which execution and which artefact digest each stage contributed."""

    run_id: str
    model_sha256: str
    through: str
    links: dict[str, Link] = field(default_factory=dict)
    policy_sha256: str = ""
    checks: list[str] = field(default_factory=list)

    def digest(self, stage: str, role: str) -> str:
        """The digest a stage read or wrote under `role`."""
        link = self.links[stage]
        return link.output(role) or link.input(role)

    def produced(self, role: str) -> tuple[str, str]:
        """The stage of the chain that wrote an artefact under `role`, and its digest."""
        for stage, link in self.links.items():
            if role in link.outputs:
                return stage.replace("_", " "), link.output(role)
        return "no stage of the chain", ""

    def summary(self) -> dict[str, Any]:
        """JSON-ready form: per stage its execution id and its artefacts' digests."""
        return {
            "run_id": self.run_id,
            "model_sha256": self.model_sha256,
            "through": self.through,
            "policy_sha256": self.policy_sha256,
            "links": {
                stage: {
                    "execution_id": link.execution_id,
                    "inputs": {role: a.name for role, a in sorted(link.inputs.items())},
                    "outputs": {role: a.name for role, a in sorted(link.outputs.items())},
                }
                for stage, link in self.links.items()
            },
        }

    def sha256(self) -> str:
        """Hash of the summary: what the deployment ledger records as the verified chain."""
        return sha256_json(self.summary())


Reader = Callable[[str, Path], Path]


def _default_reader(uri: str, workdir: Path) -> Path:
    from aiact.storage import fetch_tree

    return fetch_tree(uri, workdir)


class Verifier:
    """Verifies chains of custody against one store, reading artefacts from their URIs."""

    def __init__(
        self, store: LineageStore, *, rehash: bool = True, reader: Reader | None = None
    ) -> None:
        self.lineage = store
        self.mlmd = store.store
        self.rehash = rehash
        self._reader = reader or _default_reader
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self._local: dict[str, Path] = {}
        self._rehashed: set[int] = set()
        self._type_names = {t.id: t.name for t in self.mlmd.get_artifact_types()}
        self._execution_types = {t.id: t.name for t in self.mlmd.get_execution_types()}

    def close(self) -> None:
        """Remove downloaded copies."""
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None
        self._local.clear()

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading the store -------------------------------------------------------------------

    def links_of_run(self, run_id: str) -> list[Link]:
        """Every execution of a run with its artefacts by role, in recording order."""
        context = self.lineage.run_context(run_id)
        executions = sorted(self.mlmd.get_executions_by_context(context.id), key=lambda e: e.id)
        if not executions:
            return []
        events = self.mlmd.get_events_by_execution_ids([e.id for e in executions])
        artifact_ids = sorted({e.artifact_id for e in events})
        artifacts = {a.id: a for a in self.mlmd.get_artifacts_by_id(artifact_ids)}
        roles: dict[int, tuple[dict[str, mlmd_pb.Artifact], dict[str, mlmd_pb.Artifact]]] = {
            e.id: ({}, {}) for e in executions
        }
        for event in events:
            role = event.path.steps[0].key if event.path.steps else ""
            inputs, outputs = roles[event.execution_id]
            target = inputs if event.type == mlmd_pb.Event.INPUT else outputs
            target[role] = artifacts[event.artifact_id]
        links = []
        for execution in executions:
            props = properties_of(execution)
            type_name = self._execution_types.get(execution.type_id, "")
            stage = str(props.get("stage", "")) or type_name.removeprefix("aiact.")
            inputs, outputs = roles[execution.id]
            links.append(
                Link(
                    stage=stage,
                    execution_id=execution.id,
                    state=mlmd_pb.Execution.State.Name(execution.last_known_state),
                    properties=props,
                    inputs=inputs,
                    outputs=outputs,
                )
            )
        return links

    def runs_of_model(self, model_sha256: str) -> list[str]:
        """Runs in which a completed training execution produced this model, newest first."""
        artifact = self.lineage.find_artifact(lineage.MODEL, model_sha256)
        if artifact is None:
            raise CustodyError(f"model {short(model_sha256)} is not recorded in the store")
        events = self.mlmd.get_events_by_artifact_ids([artifact.id])
        producers = sorted(
            {e.execution_id for e in events if e.type == mlmd_pb.Event.OUTPUT}, reverse=True
        )
        runs: list[str] = []
        for execution_id in producers:
            for context in self.mlmd.get_contexts_by_execution(execution_id):
                if context.name not in runs:
                    runs.append(context.name)
        if not runs:
            raise CustodyError(f"model {short(model_sha256)} was produced by no recorded stage")
        return runs

    # -- content -----------------------------------------------------------------------------

    def local_path(self, artifact: mlmd_pb.Artifact) -> Path:
        """A local copy of the artefact's content (downloaded once for s3:// or minio://)."""
        uri = artifact.uri
        if uri not in self._local:
            if self._scratch is None:
                self._scratch = tempfile.TemporaryDirectory(prefix="aiact-custody-")
            workdir = Path(self._scratch.name) / str(len(self._local))
            try:
                self._local[uri] = self._reader(uri, workdir)
            except Exception as exc:  # storage errors of every backend: one clear line
                raise CustodyError(
                    f"{self._type_names.get(artifact.type_id, 'artefact')} "
                    f"{short(artifact.name)} cannot be read from {uri}: {exc}"
                ) from exc
        return self._local[uri]

    def document(self, artifact: mlmd_pb.Artifact) -> dict[str, Any]:
        """The JSON content of a report-like artefact."""
        path = self.local_path(artifact)
        try:
            loaded = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CustodyError(
                f"{self._type_names.get(artifact.type_id, 'artefact')} {short(artifact.name)} "
                f"at {artifact.uri} is not readable JSON: {exc}"
            ) from exc
        if not isinstance(loaded, dict):
            raise CustodyError(f"artefact {short(artifact.name)} is not a JSON object")
        return loaded

    def check_content(self, artifact: mlmd_pb.Artifact) -> None:
        """Re-hash the artefact's content now and compare it with its MLMD record."""
        if artifact.id in self._rehashed:
            return
        type_name = self._type_names.get(artifact.type_id, "artefact")
        recorded = artifact.name
        stored_hash = str(properties_of(artifact).get("content_sha256", recorded))
        if stored_hash != recorded:
            raise CustodyError(
                f"{type_name} #{artifact.id}: recorded content hash {short(stored_hash)} differs "
                f"from its identity {short(recorded)}: the store was altered"
            )
        if type_name == lineage.GATE_POLICY:
            from aiact.policy import policy_sha256

            text = str(properties_of(artifact).get("policy_json", ""))
            try:
                actual = policy_sha256(json.loads(text))
            except ValueError:
                actual = ""
        else:
            actual = sha256_path(self.local_path(artifact))
        if actual != recorded:
            raise CustodyError(
                f"{type_name} {short(recorded)} at {artifact.uri} was altered after it was "
                f"recorded: its content now hashes to {short(actual)}"
            )
        self._rehashed.add(artifact.id)

    # -- the chain ---------------------------------------------------------------------------

    def verify_model(
        self, model_sha256: str, *, run_id: str | None = None, through: str = "approval"
    ) -> Custody:
        """The chain of a model up to and including stage `through`, in `run_id` (default: any
        run that trained it; the newest that verifies wins, else the newest run's error)."""
        runs = [run_id] if run_id else self.runs_of_model(model_sha256)
        errors: list[tuple[int, CustodyError]] = []
        for candidate in runs:
            try:
                return self._verify(candidate, through=through, model=model_sha256)
            except CustodyError as exc:
                # Report the run that got furthest (e.g. the one that deployed the model).
                reached = [
                    CHAIN.index(link.stage)
                    for link in self.links_of_run(candidate)
                    if link.state == "COMPLETE" and link.stage in CHAIN
                ]
                errors.append((max(reached, default=-1), exc))
        raise max(errors, key=lambda pair: pair[0])[1]

    def verify_dataset(self, dataset_sha256: str, run_id: str) -> Custody:
        """The chain of a dataset: its data preparation in this run."""
        return self._verify(run_id, through="data_preparation", dataset=dataset_sha256)

    def verify_features(
        self, feature_set_sha256: str, transform_sha256: str, run_id: str
    ) -> Custody:
        """The chain of a feature set and its transform: feature engineering in this run, on a
        dataset prepared in this run."""
        return self._verify(
            run_id,
            through="feature_engineering",
            feature_set=feature_set_sha256,
            transform=transform_sha256,
        )

    def _verify(
        self,
        run_id: str,
        *,
        through: str,
        model: str = "",
        dataset: str = "",
        feature_set: str = "",
        transform: str = "",
    ) -> Custody:
        if through not in CHAIN:
            raise CustodyError(f"unknown stage {through!r}")
        upto = CHAIN.index(through)
        links = self.links_of_run(run_id)
        custody = Custody(run_id=run_id, model_sha256=model, through=through)
        # A verdict against the run (a breached gate, a refusal, a rejection) in any stage up to
        # `through` breaks the chain; an infrastructure failure (a lost connection, a crash) does
        # not, since only COMPLETE executions can form the chain.
        failed = [
            link
            for link in links
            if base_stage(link.stage) in CHAIN[: upto + 1]
            and (
                link.properties.get("verdict") == BREACHED
                or (
                    link.state != "COMPLETE"
                    and (
                        link.properties.get("outcome") in VERDICTS
                        or link.properties.get("gate_breaches")
                    )
                )
            )
        ]
        if failed:
            first = failed[0]
            why = first.properties.get("gate_breaches") or first.properties.get("error", "")
            what = (
                f"run {run_id}'s {base_stage(first.stage).replace('_', ' ')} gate breached"
                if first.properties.get("verdict") == BREACHED
                else f"run {run_id} has a {first.state} {first.stage}"
            )
            raise CustodyError(
                f"{what} (execution "
                f"{first.execution_id}{': ' + str(why)[:200] if why else ''}): "
                "no model of this run may pass beyond it"
            )
        completed = [link for link in links if link.state == "COMPLETE"]

        def producer(stage: str, role: str, digest: str, what: str) -> Link:
            for link in reversed(completed):
                if link.stage == stage and link.output(role) == digest:
                    return link
            elsewhere = [
                link for link in completed if link.output(role) == digest and link.stage != stage
            ]
            hint = f" (it came from {elsewhere[0].stage})" if elsewhere else ""
            raise CustodyError(
                f"{what} {short(digest)} was not produced by a completed {stage} in run "
                f"{run_id}{hint}"
            )

        def consumer(stage: str, wanted: Mapping[str, str], what: str) -> Link:
            candidates = [link for link in completed if link.stage == stage]
            for link in reversed(candidates):
                if all(link.input(role) == digest for role, digest in wanted.items()):
                    return link
            if candidates:
                link = candidates[-1]
                role, digest = next((r, d) for r, d in wanted.items() if link.input(r) != d)
                raise CustodyError(
                    f"{stage} (execution {link.execution_id}) in run {run_id} read "
                    f"{role.replace('_', ' ')} {short(link.input(role))}, not "
                    f"{short(digest)}: it is not about {what}"
                )
            raise CustodyError(f"run {run_id} has no completed {stage} of {what}")

        if model:
            training = producer("training", "model", model, "model")
            custody.links["training"] = training
            feature_set = training.input("feature_set")
            transform = training.input("transform")
        if feature_set:
            features = producer("feature_engineering", "feature_set", feature_set, "feature set")
            if transform and features.output("transform") != transform:
                raise CustodyError(
                    f"transform {short(transform)} was not fitted with feature set "
                    f"{short(feature_set)} (feature engineering execution "
                    f"{features.execution_id} wrote transform "
                    f"{short(features.output('transform'))})"
                )
            custody.links["feature_engineering"] = features
            dataset = features.input("dataset")
            if not dataset:
                raise CustodyError(
                    f"feature engineering execution {features.execution_id} in run {run_id} "
                    "read no recorded dataset"
                )
        if not dataset:
            raise CustodyError("nothing to verify: no dataset, feature set or model given")
        custody.links["data_preparation"] = producer(
            "data_preparation", "dataset", dataset, "dataset"
        )
        model_what = f"model {short(model)}"
        if model and upto >= CHAIN.index("evaluation"):
            evaluation = consumer(
                "evaluation", {"model": model, "feature_set": feature_set}, model_what
            )
            custody.links["evaluation"] = evaluation
        if model and upto >= CHAIN.index("registration"):
            custody.links["registration"] = consumer(
                "registration",
                {
                    "model": model,
                    "evaluation_report": custody.digest("evaluation", "evaluation_report"),
                    "dataset": dataset,
                },
                model_what,
            )
        if model and upto >= CHAIN.index("integration_testing"):
            custody.links["integration_testing"] = consumer(
                "integration_testing",
                {
                    "model": model,
                    "registration": custody.digest("registration", "registration"),
                    "feature_set": feature_set,
                },
                model_what,
            )
        if model and upto >= CHAIN.index("approval"):
            custody.links["approval"] = consumer(
                "approval",
                {
                    "model": model,
                    "evaluation_report": custody.digest("evaluation", "evaluation_report"),
                    "integration_report": custody.digest(
                        "integration_testing", "integration_report"
                    ),
                },
                model_what,
            )
        if model and upto >= CHAIN.index("deployment"):
            custody.links["deployment"] = consumer(
                "deployment",
                {"model": model, "approval": custody.digest("approval", "approval")},
                model_what,
            )
        self._link_verdicts(custody, completed)
        custody.links = {stage: custody.links[stage] for stage in ORDER if stage in custody.links}
        self._check_order(custody)
        self._check_outcomes(custody)
        self._check_policy(custody)
        self._check_bindings(custody, dataset=dataset, feature_set=feature_set)
        if self.rehash:
            for link in custody.links.values():
                for _, artifact in link.artifacts():
                    self.check_content(artifact)
            custody.checks.append("every artefact re-hashed from storage equals its record")
        return custody

    def _link_verdicts(self, custody: Custody, completed: list[Link]) -> None:
        """Add each gate's verdict link: a completed `<gate>_verdict` execution of this run that
        read the gate's report and judged it passed; the stage after the gate must have
        consumed that verdict."""
        for gate, role in GATE_REPORTS.items():
            if gate not in custody.links:
                continue
            report = custody.digest(gate, role)
            name = verdict_stage(gate)
            verdicts = [
                link for link in completed if link.stage == name and link.input(role) == report
            ]
            passed = [link for link in verdicts if link.properties.get("verdict") == PASSED]
            if not passed:
                raise CustodyError(
                    f"run {custody.run_id} has no passed verdict of the {gate.replace('_', ' ')} "
                    f"gate on its {role.replace('_', ' ')} {short(report)}: the gate's verdict "
                    "task did not run, or did not pass it"
                )
            verdict = passed[-1]
            custody.links[name] = verdict
            consumer = custody.links.get(VERDICT_CONSUMERS[gate])
            if consumer is not None and consumer.input(name) != verdict.output(name):
                raise CustodyError(
                    f"{consumer.stage} (execution {consumer.execution_id}) in run "
                    f"{custody.run_id} did not consume the {gate.replace('_', ' ')} gate's "
                    f"verdict {short(verdict.output(name))} (it read "
                    f"{short(consumer.input(name))}): it did not wait for the gate"
                )

    def gate_evidence(
        self, run_id: str, gate: str, report_sha256: str
    ) -> tuple[Link, dict[str, Any]]:
        """The completed `gate` execution of this run that wrote this report, and the report,
        re-hashed from storage; its recorded verdict must agree with the report's."""
        if gate not in GATE_REPORTS:
            raise CustodyError(f"unknown gate {gate!r}: one of {', '.join(sorted(GATE_REPORTS))}")
        role = GATE_REPORTS[gate]
        links = [
            link
            for link in self.links_of_run(run_id)
            if link.stage == gate
            and link.state == "COMPLETE"
            and link.output(role) == report_sha256
        ]
        if not links:
            raise CustodyError(
                f"{role.replace('_', ' ')} {short(report_sha256)} was not written by a completed "
                f"{gate.replace('_', ' ')} in run {run_id}"
            )
        link = links[-1]
        artifact = link.outputs[role]
        self.check_content(artifact)
        report = self.document(artifact)
        passed = (report.get("gate") or {}).get("passed") is True
        recorded = link.properties.get("verdict")
        if recorded != (PASSED if passed else BREACHED) or (
            properties_of(artifact).get("passed") is not passed
        ):
            raise CustodyError(
                f"{gate.replace('_', ' ')} execution {link.execution_id} recorded verdict "
                f"{recorded or '(none)'} but its {role.replace('_', ' ')} "
                f"{'passed' if passed else 'did not pass'}: the evidence was altered"
            )
        return link, report

    def _check_ledger(self, custody: Custody, link: Link, entry: Mapping[str, Any]) -> None:
        """The deployment's ledger entry is really in the (write-once) ledger, unchanged, and
        records the custody of the chain as it stands now."""
        from aiact.ledger import LedgerError, ledger_from_uri

        props = properties_of(link.outputs["deployment"])
        location = str(props.get("ledger_uri", ""))
        sequence = int(props.get("ledger_sequence", 0) or 0)
        try:
            entries = ledger_from_uri(location).entries()
        except LedgerError as exc:
            raise CustodyError(f"deployment ledger {location or '(none)'}: {exc}") from exc
        stored = next((e for e in entries if e.get("sequence") == sequence), None)
        if stored is None:
            raise CustodyError(
                f"deployment of model {short(custody.model_sha256)} records ledger entry "
                f"{sequence} of {location}, which the ledger does not hold"
            )
        if stored != entry or stored.get("entry_sha256") != props.get("ledger_entry_sha256"):
            raise CustodyError(
                f"ledger entry {sequence} of {location} differs from the deployment recorded in "
                "the metadata store"
            )
        approved = Custody(
            run_id=custody.run_id,
            model_sha256=custody.model_sha256,
            through="approval",
            links={k: v for k, v in custody.links.items() if k != "deployment"},
            policy_sha256=custody.policy_sha256,
        )
        if stored.get("custody_sha256") != approved.sha256():
            raise CustodyError(
                f"ledger entry {sequence} recorded chain of custody "
                f"{short(str(stored.get('custody_sha256', '')))}, but the metadata store now "
                f"shows {short(approved.sha256())}: the store was altered after deployment"
            )
        custody.checks.append(f"ledger entry {sequence} of {location} matches the deployment")

    def _check_order(self, custody: Custody) -> None:
        previous: Link | None = None
        for link in custody.links.values():
            if previous is not None and link.execution_id <= previous.execution_id:
                raise CustodyError(
                    f"{link.stage} (execution {link.execution_id}) was recorded before "
                    f"{previous.stage} (execution {previous.execution_id}) in run "
                    f"{custody.run_id}: stages out of order"
                )
            previous = link
        custody.checks.append(
            "in order, in run " + custody.run_id + ": " + " -> ".join(custody.links)
        )

    def _check_outcomes(self, custody: Custody) -> None:
        for link in custody.links.values():
            outcome = link.properties.get("outcome", "")
            if outcome != "completed":
                raise CustodyError(
                    f"{link.stage} execution {link.execution_id} is COMPLETE in the store but "
                    f"recorded outcome {outcome or '(none)'}: the store was altered"
                )

    def _check_policy(self, custody: Custody) -> None:
        hashes = {
            stage: link.input("gate_policy")
            for stage, link in custody.links.items()
            if stage in POLICY_STAGES
        }
        distinct = set(hashes.values())
        if "" in distinct:
            missing = [stage for stage, digest in hashes.items() if not digest]
            raise CustodyError(f"{missing[0]} recorded no gate policy")
        if len(distinct) > 1:
            listed = ", ".join(f"{stage} {short(digest)}" for stage, digest in hashes.items())
            raise CustodyError(
                f"the gates of run {custody.run_id} used different policies: {listed}"
            )
        custody.policy_sha256 = next(iter(distinct), "")

    def _report(self, custody: Custody, stage: str) -> dict[str, Any]:
        link = custody.links[stage]
        role = GATE_REPORTS[stage]
        artifact = link.outputs.get(role)
        if artifact is None:
            raise CustodyError(f"{stage} execution {link.execution_id} recorded no {role}")
        report = self.document(artifact)
        gate = report.get("gate") or {}
        if gate.get("passed") is not True or properties_of(artifact).get("passed") is not True:
            raise CustodyError(
                f"{role.replace('_', ' ')} {short(artifact.name)} of run {custody.run_id} did not "
                "pass its gate"
            )
        if custody.policy_sha256 and report.get("policy_sha256") != custody.policy_sha256:
            raise CustodyError(
                f"{role.replace('_', ' ')} {short(artifact.name)} was judged under policy "
                f"{short(str(report.get('policy_sha256', '')))}, not {short(custody.policy_sha256)}"
            )
        return report

    def _check_bindings(self, custody: Custody, *, dataset: str, feature_set: str) -> None:
        model = custody.model_sha256
        run_id = custody.run_id
        for stage in ("data_preparation", "feature_engineering"):
            if stage in custody.links:
                self._report(custody, stage)

        def expect(what: str, found: Any, wanted: str, subject: str, field_name: str) -> None:
            if found != wanted:
                raise CustodyError(
                    f"{what} {short(subject)} {field_name} {short(str(found or ''))}, "
                    f"not {short(wanted)}"
                )

        if "evaluation" in custody.links:
            report = self._report(custody, "evaluation")
            subject = custody.digest("evaluation", "evaluation_report")
            sections = report.get("sections") or {}
            expect(
                "evaluation report", sections.get("model_sha256"), model, subject, "evaluated model"
            )
            expect(
                "evaluation report",
                sections.get("feature_set_sha256"),
                feature_set,
                subject,
                "evaluated feature set",
            )
        if "registration" in custody.links:
            link = custody.links["registration"]
            record = self.document(link.outputs["registration"])
            subject = link.output("registration")
            expect("registration", record.get("model_sha256"), model, subject, "registered model")
            expect(
                "registration",
                record.get("evaluation_report_sha256"),
                custody.digest("evaluation", "evaluation_report"),
                subject,
                "cites evaluation report",
            )
            expect("registration", record.get("dataset_sha256"), dataset, subject, "cites dataset")
            expect("registration", record.get("pipeline_run_id"), run_id, subject, "belongs to run")
        if "integration_testing" in custody.links:
            report = self._report(custody, "integration_testing")
            subject = custody.digest("integration_testing", "integration_report")
            sections = report.get("sections") or {}
            expect(
                "integration report", sections.get("model_sha256"), model, subject, "tested model"
            )
            expect(
                "integration report",
                sections.get("registration_sha256"),
                custody.digest("registration", "registration"),
                subject,
                "tested registration",
            )
        if "approval" in custody.links:
            link = custody.links["approval"]
            document = self.document(link.outputs["approval"])
            subject = link.output("approval")
            request = document.get("request") or {}
            expect("approval", request.get("model_sha256"), model, subject, "approved model")
            expect(
                "approval",
                request.get("evaluation_report_sha256"),
                custody.digest("evaluation", "evaluation_report"),
                subject,
                "reviewed evaluation report",
            )
            expect(
                "approval",
                request.get("integration_report_sha256"),
                custody.digest("integration_testing", "integration_report"),
                subject,
                "reviewed integration report",
            )
            expect("approval", request.get("pipeline_run_id"), run_id, subject, "belongs to run")
            status = (document.get("outcome") or {}).get("status", "")
            if status != "approved" or link.outputs["approval"].custom_properties[
                "outcome"
            ].string_value not in ("", "approved"):
                raise CustodyError(
                    f"approval {short(subject)} is {status or 'undecided'}, not approved"
                )
        if "deployment" in custody.links:
            link = custody.links["deployment"]
            entry = self.document(link.outputs["deployment"])
            subject = link.output("deployment")
            expect("deployment", entry.get("model_sha256"), model, subject, "deployed model")
            expect(
                "deployment",
                entry.get("approval_sha256"),
                custody.digest("approval", "approval"),
                subject,
                "cites approval",
            )
            expect("deployment", entry.get("pipeline_run_id"), run_id, subject, "belongs to run")
            self._check_ledger(custody, link, entry)
        custody.checks.append(
            "every gate passed and every artefact names the model, data and reports it was about"
        )


def verify_ledger(store: LineageStore, ledger_uri: str) -> Any:
    """Cross-check a deployment ledger with the store both ways: every deployment the store
    recorded against it has its entry (same hash, key, model), every entry has its deployment,
    and no entry up to the highest recorded head is missing or rewritten. Returns the head."""
    from aiact.ledger import RecordedDeployment, cross_check, ledger_from_uri
    from aiact.queries import query_artifacts

    ledger = ledger_from_uri(ledger_uri)
    recorded = []
    # The deployments recorded against this ledger (an indexed filter query, not every one).
    for artifact in query_artifacts(store, lineage.DEPLOYMENT, {"ledger_uri": ledger.location}):
        props = properties_of(artifact)
        recorded.append(
            RecordedDeployment(
                sequence=int(props.get("ledger_sequence", 0) or 0),
                entry_sha256=str(props.get("ledger_entry_sha256", "")),
                deployment_key=str(props.get("deployment_key", "")),
                model_sha256=str(props.get("model_sha256", "")),
                head_sequence=int(props.get("ledger_head_sequence", 0) or 0),
                head_sha256=str(props.get("ledger_head_sha256", "")),
            )
        )
    return cross_check(ledger, recorded)


def find_models(
    store: LineageStore, name_or_digest: str, limit: int | None = None
) -> list[mlmd_pb.Artifact]:
    """The models an auditor means: a full digest, a version (digest prefix of 12+ hex digits),
    or a model name (its production models, else every model of that name), newest first, at
    most `limit`. Indexed queries (by name, by a name range, by custom property), never a list
    of every model."""
    from aiact.queries import artifacts_with_prefix, production_models, query_artifacts

    wanted = name_or_digest.strip().lower()
    hexdigits = set("0123456789abcdef")
    found: list[mlmd_pb.Artifact]
    if len(wanted) >= 12 and set(wanted) <= hexdigits:
        exact = store.find_artifact(lineage.MODEL, wanted) if len(wanted) == 64 else None
        if exact is not None:
            found = [exact]
        else:
            found = artifacts_with_prefix(store, lineage.MODEL, wanted, limit=limit)
    else:
        found = production_models(store, name_or_digest)[:limit] or query_artifacts(
            store, lineage.MODEL, {"model_name": name_or_digest}, limit=limit
        )
    if not found:
        raise CustodyError(f"no model {name_or_digest!r} in the metadata store")
    return sorted(found, key=lambda m: m.id, reverse=True)


def default_through(store: LineageStore, model: mlmd_pb.Artifact) -> str:
    """How far a model's chain must reach: to deployment once it was deployed (in production
    or archived, or any deployment records it), else approval."""
    from aiact.queries import newest_artifact

    if properties_of(model).get("stage") in ("production", "archived"):
        return "deployment"
    if newest_artifact(store, lineage.DEPLOYMENT, {"model_sha256": model.name}) is not None:
        return "deployment"
    return "approval"


def render(custody: Custody) -> list[str]:
    """Lines an auditor reads: each link with its execution and digests, then what was proven."""
    lines = [
        f"model {short(custody.model_sha256)} run {custody.run_id}: chain verified through "
        f"{custody.through}"
    ]
    for stage, link in custody.links.items():
        outputs = " ".join(f"{role}={short(a.name)}" for role, a in sorted(link.outputs.items()))
        lines.append(f"  {stage:<20} execution {link.execution_id:<5} {outputs}")
    lines += [f"  proven: {check}" for check in custody.checks]
    lines.append(f"  gate policy sha256:{custody.policy_sha256}")
    lines.append(f"  custody sha256:{custody.sha256()}")
    return lines


def verify_model(
    store: LineageStore,
    model_sha256: str,
    *,
    run_id: str | None = None,
    through: str = "approval",
    rehash: bool = True,
) -> Custody:
    """Verify one model's chain (see `Verifier.verify_model`)."""
    with Verifier(store, rehash=rehash) as verifier:
        return verifier.verify_model(model_sha256, run_id=run_id, through=through)
