"""Offline checks of the approval gate's cluster manifests (manifests/cluster).

No API server runs here, so the pieces a cluster would enforce are checked one by one: the
rendered manifests against the Kubernetes 1.32 schemas (`kubernetes-validate --strict`), example
ModelApprovals against the CRD's openAPIV3Schema (jsonschema), and the CRD's CEL rules and the
ValidatingAdmissionPolicy's expressions with Google's CEL evaluator (cel-expr-python, with the
strings and optional extensions Kubernetes enables) on AdmissionRequest-shaped inputs. What this
cannot show: the API server's own wiring (schema pruning and defaulting, the status subresource
reset, rule cost limits, RBAC evaluation).
"""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
import yaml
from cel_expr_python import cel
from cel_expr_python.ext.ext_optional import ExtOptional
from cel_expr_python.ext.ext_strings import ExtStrings

from aiact.approval import ApprovalRequest, Decision
from aiact.approval.kubernetes import GROUP, KIND, PLURAL, decision_status, to_resource
from tests.manifests.test_kustomize_manifests import (
    CLUSTER_SCOPED_KINDS,
    KUBERNETES_VERSION,
    _render,
    _tool,
    _validate,
    _verbs,
)

REQUESTER = "carol@example.com"
APPROVER = "alice@example.com"
APPROVER_GROUP = "aiact-approvers"


@pytest.fixture(scope="module")
def rendered() -> str:
    return _render("manifests/cluster")


@pytest.fixture(scope="module")
def docs(rendered: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def _kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind]
    return found


@pytest.fixture(scope="module")
def crd_version(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (version,) = _kind(docs, "CustomResourceDefinition")["spec"]["versions"]
    return dict(version)


@pytest.fixture(scope="module")
def policy(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return _kind(docs, "ValidatingAdmissionPolicy")


def _approval(**decision: str) -> dict[str, Any]:
    """A ModelApproval exactly as the Kubernetes backend creates it, optionally decided."""
    resource = to_resource(
        ApprovalRequest(
            name="credit-scoring-0123456789ab-deadbeef",
            model_name="credit-scoring",
            model_sha256="0123456789abcdef" * 4,
            evaluation_report_uri="s3://aiact/runs/r1/evaluation/report.html",
            evaluation_report_sha256="b" * 64,
            integration_report_uri="s3://aiact/runs/r1/integration/report.json",
            integration_report_sha256="c" * 64,
            pipeline_run_id="r1",
            requested_by=REQUESTER,
            approver_group=APPROVER_GROUP,
            environment="production",
            expires_at="2026-11-30T12:00:00+00:00",
        )
    )
    resource["metadata"].update(
        namespace="team-credit",
        uid="u-1",
        resourceVersion="7",
        creationTimestamp="2026-11-23T12:00:00Z",
    )
    if decision:
        fields = {
            "decision": "approved",
            "approver": APPROVER,
            "reason": "reviewed the evaluation and integration reports",
            "decided_at": "2026-11-24T09:30:00+00:00",
            **decision,
        }
        resource["status"] = {"decision": decision_status(Decision(**fields))}
    return resource


# ----------------------------------------------------------------------------- the manifests


def test_cluster_manifests_validate_against_kubernetes_schemas(rendered: str) -> None:
    result = _validate(rendered)
    assert result.returncode == 0, result.stdout + result.stderr


def test_validation_catches_a_broken_crd(rendered: str) -> None:
    """kubernetes-validate does check the CRD and policy kinds (so the test above can fail)."""
    broken = rendered.replace("scope: Namespaced", "scope: Namespaced\n  scopes: everywhere", 1)
    assert broken != rendered
    result = subprocess.run(
        [_tool("kubernetes-validate"), "-k", KUBERNETES_VERSION, "--strict", "--quiet", "-"],
        input=broken,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0


def test_everything_is_cluster_scoped_and_unnamespaced(docs: list[dict[str, Any]]) -> None:
    assert {d["kind"] for d in docs} == {
        "CustomResourceDefinition",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ClusterRole",
    }
    for doc in docs:
        assert doc["kind"] in CLUSTER_SCOPED_KINDS
        assert "namespace" not in doc["metadata"], doc["metadata"]["name"]


def test_crd_names_match_backend_and_rbac(docs: list[dict[str, Any]]) -> None:
    crd = _kind(docs, "CustomResourceDefinition")
    spec = crd["spec"]
    assert crd["metadata"]["name"] == f"{PLURAL}.{GROUP}"
    assert (spec["group"], spec["scope"]) == (GROUP, "Namespaced")
    assert (spec["names"]["kind"], spec["names"]["plural"]) == (KIND, PLURAL)
    (version,) = spec["versions"]
    assert version["subresources"] == {"status": {}}
    runner = [
        d
        for d in yaml.safe_load_all(_render("manifests/pipeline-namespace"))
        if d["kind"] == "Role"
    ]
    roles = {role["metadata"]["name"]: role for role in runner}
    # The pipeline can create and watch approvals but not write a decision (status).
    assert {"create", "watch"} <= _verbs(roles["aiact-pipeline-runner"], PLURAL)
    assert "patch" not in _verbs(roles["aiact-pipeline-runner"], f"{PLURAL}/status")
    assert "patch" in _verbs(roles["aiact-approver"], f"{PLURAL}/status")
    view = _kind(docs, "ClusterRole")
    assert _verbs(view, PLURAL) == {"get", "list", "watch"}
    assert not _verbs(view, f"{PLURAL}/status")


def _json_path(document: dict[str, Any], path: str) -> Any:
    value: Any = document
    for key in path.strip(".").split("."):
        value = value[key]
    return value


def test_printer_columns_resolve_on_a_decided_approval(crd_version: dict[str, Any]) -> None:
    decided = _approval(decision="approved")
    shown = {
        column["name"]: _json_path(decided, column["jsonPath"])
        for column in crd_version["additionalPrinterColumns"]
    }
    assert shown["Model"] == "credit-scoring"
    assert shown["Decision"] == "approved" and shown["Approver"] == APPROVER
    assert shown["Expiry"] == "2026-11-30T12:00:00+00:00"


# ----------------------------------------------------------------------------- schema


def _json_schema(node: Any) -> Any:
    """The openAPIV3Schema as JSON Schema: drop the x-kubernetes-* extensions."""
    if isinstance(node, dict):
        return {k: _json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if isinstance(node, list):
        return [_json_schema(v) for v in node]
    return node


@pytest.fixture(scope="module")
def validator(crd_version: dict[str, Any]) -> jsonschema.Draft4Validator:
    checker = jsonschema.FormatChecker()
    assert "date-time" in checker.checkers, "date-time is not checked without rfc3339-validator"
    schema = _json_schema(crd_version["schema"]["openAPIV3Schema"])
    return jsonschema.Draft4Validator(schema, format_checker=checker)


def test_backend_objects_match_the_schema(validator: jsonschema.Draft4Validator) -> None:
    validator.validate(_approval())
    validator.validate(_approval(decision="rejected", reason="bias in age band"))


@pytest.mark.parametrize(
    ("path", "value", "error"),
    [
        ("spec.model.sha256", "not-a-digest", "does not match"),
        ("spec.evaluationReport.sha256", "B" * 64, "does not match"),
        ("spec.expiry", "next tuesday", "is not a 'date-time'"),
        ("spec.pipelineRunId", "", "should be non-empty"),
        ("status.decision.verdict", "maybe", "is not one of"),
        ("status.decision.approver", "", "should be non-empty"),
        ("status.decision.kind", "robot", "is not one of"),
    ],
)
def test_schema_refuses(
    validator: jsonschema.Draft4Validator, path: str, value: str, error: str
) -> None:
    approval = _approval(decision="approved")
    *parents, leaf = path.split(".")
    _json_path(approval, ".".join(parents))[leaf] = value
    with pytest.raises(jsonschema.ValidationError, match=error):
        validator.validate(approval)


@pytest.mark.parametrize("missing", ["spec.expiry", "spec.requestedBy", "status.decision.time"])
def test_schema_requires(validator: jsonschema.Draft4Validator, missing: str) -> None:
    approval = _approval(decision="approved")
    *parents, leaf = missing.split(".")
    del _json_path(approval, ".".join(parents))[leaf]
    with pytest.raises(jsonschema.ValidationError, match="is a required property"):
        validator.validate(approval)


# ----------------------------------------------------------------------------- CEL


def _env(*variables: str) -> cel.Env:
    return cel.NewEnv(
        variables=dict.fromkeys(variables, cel.Type.DYN),
        extensions=[ExtStrings(), ExtOptional()],
    )


def _eval(env: cel.Env, expression: str, data: dict[str, Any]) -> Any:
    result = env.compile(expression).eval(data=data)
    assert result.type() != cel.Type.ERROR, f"{expression!r} failed: {result.value()}"
    return result.value()


def _rules(
    schema: dict[str, Any], path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    for rule in schema.get("x-kubernetes-validations", []):
        yield path, rule
    for name, child in schema.get("properties", {}).items():
        yield from _rules(child, (*path, name))


def _node(document: dict[str, Any] | None, path: tuple[str, ...]) -> Any:
    try:
        return (
            None if document is None else _json_path(document, ".".join(path)) if path else document
        )
    except KeyError:
        return None


def _crd_violations(
    crd_version: dict[str, Any], new: dict[str, Any], old: dict[str, Any] | None
) -> list[str]:
    """Messages of the CRD rules `new` breaks, evaluated as the API server does: each rule on
    its node's value (`self`); transition rules (`oldSelf`) only on update, where both exist."""
    env = _env("self", "oldSelf")
    messages = []
    for path, rule in _rules(crd_version["schema"]["openAPIV3Schema"]):
        value, old_value = _node(new, path), _node(old, path)
        if value is None:
            continue
        if "oldSelf" in rule["rule"] and old_value is None:
            continue
        if _eval(env, rule["rule"], {"self": value, "oldSelf": old_value}) is not True:
            messages.append(rule["message"])
    return messages


def test_crd_admits_creation_and_a_valid_decision(crd_version: dict[str, Any]) -> None:
    assert _crd_violations(crd_version, _approval(), None) == []
    decided = _approval(decision="approved", reason="")
    assert _crd_violations(crd_version, decided, _approval()) == []
    rejected = _approval(decision="rejected", reason="equalized odds too wide")
    assert _crd_violations(crd_version, rejected, _approval()) == []
    # Re-applying the same decision (e.g. a label change) is not a change of decision.
    assert _crd_violations(crd_version, decided, copy.deepcopy(decided)) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("flip", "a decision is final once recorded"),
        ("new-approver", "a decision is final once recorded"),
        ("withdraw", "a recorded decision cannot be withdrawn"),
        ("blank-rejection", "a rejection must give a reason"),
        ("late", "the approval had expired before this decision"),
        ("spec", "spec is immutable: the evidence under review cannot change"),
    ],
)
def test_crd_refuses(crd_version: dict[str, Any], change: str, message: str) -> None:
    old = _approval()
    if change == "flip":
        old, new = _approval(decision="approved"), _approval(decision="rejected", reason="no")
    elif change == "new-approver":
        old, new = _approval(decision="approved"), _approval(approver="mallory@example.com")
    elif change == "withdraw":
        old, new = _approval(decision="approved"), _approval()
    elif change == "blank-rejection":
        new = _approval(decision="rejected", reason="x")
        new["status"]["decision"]["reason"] = "   "  # the CLI refuses this; kubectl does not
    elif change == "late":
        new = _approval(decided_at="2026-12-01T00:00:00+00:00")
    else:
        new = _approval()
        new["spec"]["evaluationReport"]["sha256"] = "d" * 64
    assert message in _crd_violations(crd_version, new, old)


def _admission(
    new: dict[str, Any],
    old: dict[str, Any] | None,
    username: str = APPROVER,
    groups: tuple[str, ...] = (APPROVER_GROUP, "system:authenticated"),
) -> dict[str, Any]:
    """The variables a ValidatingAdmissionPolicy sees for a status PATCH of a ModelApproval."""
    return {
        "object": new,
        "oldObject": old,
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": GROUP, "version": "v1", "kind": KIND},
            "resource": {"group": GROUP, "version": "v1", "resource": PLURAL},
            "subResource": "status",
            "requestKind": {"group": GROUP, "version": "v1", "kind": KIND},
            "name": new["metadata"]["name"],
            "namespace": new["metadata"]["namespace"],
            "operation": "UPDATE" if old is not None else "CREATE",
            "userInfo": {"username": username, "uid": "1001", "groups": list(groups)},
            "dryRun": False,
        },
        "params": None,
    }


def _policy_verdict(policy: dict[str, Any], admission: dict[str, Any]) -> list[str] | None:
    """None when the policy does not match; else the messages of the failed validations."""
    env = _env("object", "oldObject", "request", "params")
    spec = policy["spec"]
    if not all(_eval(env, c["expression"], admission) for c in spec["matchConditions"]):
        return None
    return [
        str(_eval(env, v["messageExpression"], admission))
        for v in spec["validations"]
        if _eval(env, v["expression"], admission) is not True
    ]


def test_policy_scope(policy: dict[str, Any], docs: list[dict[str, Any]]) -> None:
    (rule,) = policy["spec"]["matchConstraints"]["resourceRules"]
    assert rule["apiGroups"] == [GROUP]
    assert set(rule["resources"]) == {PLURAL, f"{PLURAL}/status"}
    assert policy["spec"]["failurePolicy"] == "Fail"
    binding = _kind(docs, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]


def test_policy_admits_a_valid_decision(policy: dict[str, Any]) -> None:
    admission = _admission(_approval(decision="approved"), _approval())
    assert _policy_verdict(policy, admission) == []


def test_policy_ignores_requests_that_set_no_decision(policy: dict[str, Any]) -> None:
    # The pipeline's service account creating the request.
    create = _admission(_approval(), None, username="system:serviceaccount:team:runner")
    assert _policy_verdict(policy, create) is None
    # Relabelling an already decided approval (the decision itself unchanged).
    decided = _approval(decision="approved")
    relabelled = copy.deepcopy(decided)
    relabelled["metadata"]["labels"]["reviewed"] = "true"
    assert _policy_verdict(policy, _admission(relabelled, decided, username="bob")) is None


@pytest.mark.parametrize(
    ("username", "groups", "approver", "message"),
    [
        (
            "bob@example.com",
            (APPROVER_GROUP,),
            APPROVER,
            f"the recorded approver {APPROVER} is not the requesting user bob@example.com",
        ),
        (
            "system:serviceaccount:team-credit:aiact-pipeline-runner",
            (APPROVER_GROUP,),
            "system:serviceaccount:team-credit:aiact-pipeline-runner",
            "cannot come from a service account",
        ),
        (
            REQUESTER,
            (APPROVER_GROUP,),
            REQUESTER,
            f"four-eyes: {REQUESTER} requested this approval and cannot decide it",
        ),
        (
            APPROVER,
            ("data-scientists",),
            APPROVER,
            f"{APPROVER} is not in the approver group {APPROVER_GROUP}",
        ),
    ],
)
def test_policy_refuses(
    policy: dict[str, Any], username: str, groups: tuple[str, ...], approver: str, message: str
) -> None:
    admission = _admission(_approval(approver=approver), _approval(), username, groups)
    verdict = _policy_verdict(policy, admission)
    assert verdict is not None and any(message in m for m in verdict), verdict
