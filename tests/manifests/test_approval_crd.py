"""Offline checks of the approval gate's cluster manifests (manifests/cluster).

No API server runs here, so the pieces a cluster would enforce are checked one by one: the
rendered manifests against the Kubernetes 1.32 schemas (`kubernetes-validate --strict`), the
printer columns with kubectl's own JSONPath, ModelApprovals against the CRD's openAPIV3Schema
(jsonschema), and the CRD's CEL rules and both ValidatingAdmissionPolicies with Google's CEL
evaluator (cel-expr-python, with the strings and optional extensions Kubernetes enables) on
AdmissionRequest-shaped inputs, through `ClusterRules` (tests/aiact/k8s_emulator.py), which the
emulated API server applies to every write as well. What this cannot show: the API server's own
wiring (CEL type checking and cost limits, schema pruning and defaulting, the status
subresource, RBAC evaluation).
"""

from __future__ import annotations

import copy
import json
import subprocess
from typing import Any

import jsonschema
import pytest
import yaml

from aiact.approval import APPROVED, REJECTED, ApprovalRequest, Decision, tally
from aiact.approval.kubernetes import (
    GROUP,
    KIND,
    PLURAL,
    decisions_of,
    request_of,
    status_of,
    to_resource,
)
from tests.aiact.k8s_emulator import ClusterRules, Refusal, json_schema
from tests.manifests.test_kustomize_manifests import (
    CLUSTER_SCOPED_KINDS,
    KUBERNETES_VERSION,
    SYSTEM_NAMESPACE,
    _render,
    _tool,
    _validate,
    _verbs,
)

PIPELINE = "system:serviceaccount:team-credit:aiact-pipeline-runner"
APPROVER_GROUP = "aiact-approvers"
HUMANS = (APPROVER_GROUP, "system:authenticated")
SA_GROUP = "system:serviceaccounts"
PARAMS = (SYSTEM_NAMESPACE, "aiact-approval-policy")
EXPIRY = "2026-11-30T12:00:00+00:00"
REVIEW_PAGE_URI = "minio://mlpipeline/v2/artifacts/aiact/r1/approval/review_page"
REVIEW_PAGE_SHA256 = "e" * 64


@pytest.fixture(scope="module")
def rendered() -> str:
    return _render("manifests/cluster")


@pytest.fixture(scope="module")
def docs(rendered: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def _kinds(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = _kinds(docs, kind).values()
    return found


@pytest.fixture(scope="module")
def crd_version(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (version,) = _kind(docs, "CustomResourceDefinition")["spec"]["versions"]
    return dict(version)


@pytest.fixture
def rules(docs: list[dict[str, Any]]) -> ClusterRules:
    """The rendered manifests' rules (a fresh copy per test: tests change the params)."""
    return ClusterRules(docs)


def _approval(
    *decisions: Decision,
    requested_by: str = "carol@example.com",
    required: int = 2,
    group: str = APPROVER_GROUP,
    environment: str = "production",
    acknowledgements: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A ModelApproval exactly as the Kubernetes backend creates and decides it."""
    request = ApprovalRequest(
        name="credit-scoring-0123456789ab-deadbeef",
        model_name="credit-scoring",
        model_sha256="0123456789abcdef" * 4,
        evaluation_report_uri="s3://aiact/runs/r1/evaluation/report.html",
        evaluation_report_sha256="b" * 64,
        integration_report_uri="s3://aiact/runs/r1/integration/report.json",
        integration_report_sha256="c" * 64,
        pipeline_run_id="r1",
        requested_by=requested_by,
        approver_group=group,
        environment=environment,
        expires_at=EXPIRY,
        required_approvals=required,
        acknowledgements_required=acknowledgements,
        review_page_uri=REVIEW_PAGE_URI,
        review_page_sha256=REVIEW_PAGE_SHA256,
    )
    resource = to_resource(request)
    resource["metadata"].update(
        namespace="team-credit",
        uid="u-1",
        resourceVersion="7",
        creationTimestamp="2026-11-23T12:00:00Z",
    )
    if decisions:
        resource["status"] = status_of(request, list(decisions))
    return resource


def _decided(resource: dict[str, Any], decision: Decision) -> dict[str, Any]:
    """`resource` with one more decision, as the backend appends it."""
    new = copy.deepcopy(resource)
    new["status"] = status_of(request_of(resource), [*decisions_of(resource), decision])
    return new


def _yes(approver: str, when: str = "2026-11-24T09:30:00+00:00") -> Decision:
    return Decision(APPROVED, approver, "reviewed the evaluation and integration reports", when)


def _no(approver: str, reason: str = "equalized odds for age band too wide") -> Decision:
    return Decision(REJECTED, approver, reason, "2026-11-24T10:00:00+00:00")


def _write(
    rules: ClusterRules,
    new: dict[str, Any],
    old: dict[str, Any] | None,
    user: str,
    groups: tuple[str, ...] = HUMANS,
    labels: dict[str, str] | None = None,
) -> Refusal | None:
    """What the API server answers a write (CREATE when `old` is None, else a status patch)."""
    return rules.review(
        operation="CREATE" if old is None else "UPDATE",
        new=new,
        old=old,
        username=user,
        groups=groups,
        namespace_labels=labels,
        subresource="" if old is None else "status",
    )


def _refused(refusal: Refusal | None, code: int, text: str) -> None:
    assert refusal is not None, f"admitted; expected {code} {text!r}"
    assert refusal.code == code and text in refusal.message, refusal


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


def test_only_the_policy_params_are_namespaced(docs: list[dict[str, Any]]) -> None:
    assert {d["kind"] for d in docs} == {
        "Namespace",
        "CustomResourceDefinition",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ConfigMap",
        "ClusterRole",
    }
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            assert (doc["metadata"]["namespace"], doc["metadata"]["name"]) == PARAMS
            continue
        assert doc["kind"] in CLUSTER_SCOPED_KINDS
        assert "namespace" not in doc["metadata"], doc["metadata"]["name"]


def test_the_system_namespace_is_the_one_base_creates(docs: list[dict[str, Any]]) -> None:
    """Applying manifests/cluster before or after the system overlays leaves one Namespace."""
    base = [d for d in yaml.safe_load_all(_render("manifests/base")) if d["kind"] == "Namespace"]
    assert [_kind(docs, "Namespace")] == base


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


def test_printer_columns_resolve_with_kubectl_jsonpath(
    crd_version: dict[str, Any], tmp_path: Any
) -> None:
    """Each column's JSONPath evaluated by kubectl (client-go's JSONPath, as the server's
    table printer uses) on an approval with two of its two approvals."""
    decided = _approval(_yes("alice@example.com"), _yes("bob@example.com"))
    path = tmp_path / "approval.yaml"
    path.write_text(json.dumps(decided))
    columns = crd_version["additionalPrinterColumns"]
    template = "\t".join(f"{{{column['jsonPath']}}}" for column in columns)
    shown = subprocess.run(
        [
            _tool("kubectl"),
            "annotate",
            "--local",
            "-f",
            str(path),
            "x=y",
            "-o",
            f"jsonpath={template}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split("\t")
    cells = dict(zip([column["name"] for column in columns], shown, strict=True))
    assert (cells["Model"], cells["Phase"], cells["Approvals"], cells["Required"]) == (
        "credit-scoring",
        "Approved",
        "2",
        "2",
    )
    assert cells["Last-Decision-By"] == "bob@example.com"
    assert cells["Approver-Group"] == APPROVER_GROUP and cells["Expiry"] == EXPIRY
    assert cells["Review-Page"] == REVIEW_PAGE_URI


# ----------------------------------------------------------------------------- schema


@pytest.fixture(scope="module")
def validator(crd_version: dict[str, Any]) -> jsonschema.Draft4Validator:
    checker = jsonschema.FormatChecker()
    assert "date-time" in checker.checkers, "date-time is not checked without rfc3339-validator"
    schema = json_schema(crd_version["schema"]["openAPIV3Schema"])
    return jsonschema.Draft4Validator(schema, format_checker=checker)


def _at(document: dict[str, Any], path: str) -> tuple[Any, str | int]:
    """The parent container of a dotted path (numbers index lists) and the last key."""
    *parents, leaf = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = document
    for key in parents:
        node = node[key]
    return node, leaf


def test_backend_objects_match_the_schema(validator: jsonschema.Draft4Validator) -> None:
    validator.validate(_approval())
    validator.validate(_approval(_yes("alice@example.com"), _no("bob@example.com")))


@pytest.mark.parametrize(
    ("path", "value", "error"),
    [
        ("spec.model.sha256", "not-a-digest", "does not match"),
        ("spec.evaluationReport.sha256", "B" * 64, "does not match"),
        ("spec.expiry", "next tuesday", "is not a 'date-time'"),
        ("spec.pipelineRunId", "", "should be non-empty"),
        ("spec.approverGroup", "", "should be non-empty"),
        ("spec.requiredApprovals", 0, "less than the minimum of 1"),
        ("spec.requiredApprovals", 11, "greater than the maximum of 10"),
        ("spec.requiredApprovals", "2", "is not of type 'integer'"),
        ("status.decisions.0.verdict", "maybe", "is not one of"),
        ("status.decisions.0.approver", "", "should be non-empty"),
        ("status.decisions.0.kind", "robot", "is not one of"),
        ("status.phase", "Done", "is not one of"),
    ],
)
def test_schema_refuses(
    validator: jsonschema.Draft4Validator, path: str, value: Any, error: str
) -> None:
    approval = _approval(_yes("alice@example.com"))
    parent, leaf = _at(approval, path)
    parent[leaf] = value
    with pytest.raises(jsonschema.ValidationError, match=error):
        validator.validate(approval)


@pytest.mark.parametrize(
    "missing",
    [
        "spec.expiry",
        "spec.requestedBy",
        "spec.approverGroup",
        "spec.requiredApprovals",
        "status.decisions.0.time",
    ],
)
def test_schema_requires(validator: jsonschema.Draft4Validator, missing: str) -> None:
    approval = _approval(_yes("alice@example.com"))
    parent, leaf = _at(approval, missing)
    del parent[leaf]
    with pytest.raises(jsonschema.ValidationError, match="is a required property"):
        validator.validate(approval)


def test_review_page_is_part_of_the_spec_and_validated(
    validator: jsonschema.Draft4Validator,
) -> None:
    """spec.reviewPage carries the review page's URI and SHA-256 exactly as the backend
    writes them, reads back into the request, and is refused when malformed or incomplete."""
    approval = _approval(_yes("alice@example.com"))
    assert approval["spec"]["reviewPage"] == {
        "uri": REVIEW_PAGE_URI,
        "sha256": REVIEW_PAGE_SHA256,
    }
    validator.validate(approval)
    request = request_of(approval)
    assert (request.review_page_uri, request.review_page_sha256) == (
        REVIEW_PAGE_URI,
        REVIEW_PAGE_SHA256,
    )
    for field, value, error in (
        ("sha256", "E" * 64, "does not match"),
        ("sha256", "e" * 63, "does not match"),
        ("uri", "", "should be non-empty"),
        ("uri", "x" * 2049, "is too long"),
    ):
        bad = copy.deepcopy(approval)
        bad["spec"]["reviewPage"][field] = value
        with pytest.raises(jsonschema.ValidationError, match=error):
            validator.validate(bad)
    for field in ("uri", "sha256"):
        bad = copy.deepcopy(approval)
        del bad["spec"]["reviewPage"][field]
        with pytest.raises(jsonschema.ValidationError, match="is a required property"):
            validator.validate(bad)
    # A request without a page (raised before review pages existed) still reads back.
    del approval["spec"]["reviewPage"]
    validator.validate(approval)
    assert request_of(approval).review_page_sha256 == ""


@pytest.mark.parametrize(
    "change",
    ["replace-hash", "replace-uri", "remove", "add-to-a-request-without-one"],
)
def test_the_review_page_is_immutable(rules: ClusterRules, change: str) -> None:
    """The page under review cannot be swapped after the request was created: the CRD's
    `self == oldSelf` rule on spec refuses every change of spec.reviewPage, while decisions
    are still admitted on a request that names one."""
    created = _approval()
    assert rules.crd_violations(created, None) == []
    assert rules.crd_violations(_decided(created, _yes("alice@example.com")), created) == []
    old, new = created, copy.deepcopy(created)
    if change == "replace-hash":
        new["spec"]["reviewPage"]["sha256"] = "f" * 64
    elif change == "replace-uri":
        new["spec"]["reviewPage"]["uri"] = "s3://elsewhere/review_page.html"
    elif change == "remove":
        del new["spec"]["reviewPage"]
    else:
        del old["spec"]["reviewPage"]
    violations = rules.crd_violations(new, old)
    assert any("spec is immutable" in v for v in violations), violations


def test_one_decision_per_approver_in_the_list_map(
    crd_version: dict[str, Any], rules: ClusterRules
) -> None:
    decisions = crd_version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"][
        "decisions"
    ]
    assert decisions["x-kubernetes-list-type"] == "map"
    assert decisions["x-kubernetes-list-map-keys"] == ["approver"]
    twice = _approval(_yes("bob@example.com"))
    twice["status"]["decisions"].append(dict(twice["status"]["decisions"][0]))
    assert any("Duplicate value" in e for e in rules.schema_errors(twice))
    assert rules.schema_errors(_approval(_yes("bob@example.com"))) == []


# ----------------------------------------------------------------------------- CRD rules


def test_crd_admits_creation_and_valid_decisions(rules: ClusterRules) -> None:
    created = _approval()
    assert rules.crd_violations(created, None) == []
    one = _decided(created, _yes("alice@example.com"))
    assert one["status"]["phase"] == "Pending"
    assert rules.crd_violations(one, created) == []
    two = _decided(one, _yes("bob@example.com"))
    assert (two["status"]["phase"], two["status"]["approvals"]) == ("Approved", 2)
    assert rules.crd_violations(two, one) == []
    rejected = _decided(one, _no("bob@example.com"))
    assert rules.crd_violations(rejected, one) == []
    # Re-applying the same decisions (e.g. a label change) changes nothing.
    relabelled = copy.deepcopy(two)
    relabelled["metadata"]["labels"]["reviewed"] = "true"
    assert rules.crd_violations(relabelled, two) == []


def test_crd_refuses_a_system_approver_group(rules: ClusterRules) -> None:
    message = "approverGroup may not be a Kubernetes system group"
    for group in ("system:authenticated", "system:serviceaccounts"):
        assert any(message in m for m in rules.crd_violations(_approval(group=group), None))
    assert rules.crd_violations(_approval(group="system-admins"), None) == []


def _crd_case(change: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(old, new) for each kind of write the CRD must refuse."""
    alice, bob, dave = _yes("alice@example.com"), _yes("bob@example.com"), _yes("dave@example.com")
    one = _approval(alice)
    if change == "flip":
        new = _approval(_no("alice@example.com"))
    elif change == "edit-reason":
        edited = Decision(APPROVED, "alice@example.com", "something else", alice.decided_at)
        new = _approval(edited)
    elif change == "remove":
        new = _approval(bob)
    elif change == "withdraw":
        new = _approval()
    elif change == "two-at-once":
        new = _approval(alice, bob, dave, required=3)
        return _approval(alice, required=3), new
    elif change == "after-rejection":
        old = _approval(alice, _no("bob@example.com"), required=3)
        return old, _decided(old, dave)
    elif change == "after-settlement":
        old = _approval(alice, bob)
        return old, _decided(old, dave)
    elif change == "blank-rejection":
        new = _decided(one, _no("bob@example.com", reason="x"))
        new["status"]["decisions"][1]["reason"] = "   "  # the CLI refuses this; kubectl does not
    elif change == "late":
        new = _decided(one, _yes("bob@example.com", when="2026-12-01T00:00:00+00:00"))
    elif change == "lying-phase":
        new = _approval(alice)  # one of two approvals claiming to be approved
        new["status"]["phase"] = "Approved"
        return _approval(), new
    elif change == "lying-count":
        new = _approval(alice)
        new["status"]["approvals"] = 2
        return _approval(), new
    else:  # spec
        new = copy.deepcopy(one)
        new["spec"]["evaluationReport"]["sha256"] = "d" * 64
    return one, new


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("flip", "decisions are append-only"),
        ("edit-reason", "decisions are append-only"),
        ("remove", "decisions are append-only"),
        ("withdraw", "decisions are append-only"),
        ("two-at-once", "one decision at a time"),
        ("after-rejection", "the approval is settled"),
        ("after-settlement", "the approval is settled"),
        ("blank-rejection", "a rejection must give a reason"),
        ("late", "the approval had expired before this decision"),
        ("lying-phase", "status.phase and status.approvals must summarise status.decisions"),
        ("lying-count", "status.phase and status.approvals must summarise status.decisions"),
        ("spec", "spec is immutable: the evidence under review cannot change"),
    ],
)
def test_crd_refuses(rules: ClusterRules, change: str, message: str) -> None:
    old, new = _crd_case(change)
    violations = rules.crd_violations(new, old)
    assert any(message in v for v in violations), violations


# ----------------------------------------------------------------------------- admission


def test_policy_scope(docs: list[dict[str, Any]]) -> None:
    policies = _kinds(docs, "ValidatingAdmissionPolicy")
    bindings = {
        b["spec"]["policyName"]: b
        for b in _kinds(docs, "ValidatingAdmissionPolicyBinding").values()
    }
    assert (
        set(policies)
        == set(bindings)
        == {
            "aiact-modelapproval-decisions",
            "aiact-modelapproval-requests",
        }
    )
    for name, policy in policies.items():
        (rule,) = policy["spec"]["matchConstraints"]["resourceRules"]
        assert rule["apiGroups"] == [GROUP]
        assert policy["spec"]["failurePolicy"] == "Fail"
        assert bindings[name]["spec"]["validationActions"] == ["Deny"]
    decisions = policies["aiact-modelapproval-decisions"]["spec"]["matchConstraints"]
    assert set(decisions["resourceRules"][0]["resources"]) == {PLURAL, f"{PLURAL}/status"}
    requests = policies["aiact-modelapproval-requests"]["spec"]
    assert requests["matchConstraints"]["resourceRules"][0]["operations"] == ["CREATE"]
    assert requests["paramKind"] == {"apiVersion": "v1", "kind": "ConfigMap"}
    param_ref = bindings["aiact-modelapproval-requests"]["spec"]["paramRef"]
    assert (param_ref["namespace"], param_ref["name"]) == PARAMS
    assert param_ref["parameterNotFoundAction"] == "Deny"
    config = _kind(docs, "ConfigMap")["data"]
    assert config == {"minRequiredApprovals": "1", "minRequiredApprovalsProduction": "2"}


def test_a_spoofed_requester_cannot_approve_alone(rules: ClusterRules) -> None:
    """The pipeline's service account creates the request claiming `requestedBy: alice`.
    Alice is refused as the requester; bob's second approval is refused and would not count;
    bob and carol together settle it."""
    created = _approval(requested_by="alice@example.com")
    assert _write(rules, created, None, PIPELINE, (SA_GROUP,)) is None
    by_alice = _decided(created, _yes("alice@example.com"))
    _refused(_write(rules, by_alice, created, "alice@example.com"), 403, "four-eyes: alice")
    by_bob = _decided(created, _yes("bob@example.com"))
    assert _write(rules, by_bob, created, "bob@example.com") is None
    again = copy.deepcopy(by_bob)
    again["status"]["decisions"].append(dict(again["status"]["decisions"][0]))
    _refused(_write(rules, again, by_bob, "bob@example.com"), 422, "Duplicate value")
    request = request_of(created)
    assert tally(request, [*decisions_of(by_bob), _yes("bob@example.com")]).status == "pending"
    by_carol = _decided(by_bob, _yes("carol@example.com"))
    assert _write(rules, by_carol, by_bob, "carol@example.com") is None
    outcome = tally(request, decisions_of(by_carol))
    assert (outcome.status, outcome.approvers) == (
        APPROVED,
        ("bob@example.com", "carol@example.com"),
    )
    assert by_carol["status"]["phase"] == "Approved"
    late = _decided(by_carol, _yes("dave@example.com"))
    _refused(_write(rules, late, by_carol, "dave@example.com"), 422, "the approval is settled")


@pytest.mark.parametrize(
    ("user", "groups", "approver", "message"),
    [
        (
            "bob@example.com",
            HUMANS,
            "alice@example.com",
            "the recorded approver alice@example.com is not the requesting user bob@example.com",
        ),
        (PIPELINE, HUMANS, PIPELINE, "cannot come from a service account"),
        (PIPELINE, HUMANS, "alice@example.com", "cannot come from a service account"),
        ("system:kube-controller-manager", HUMANS, "system:kube-controller-manager", "system user"),
        ("system:admin", HUMANS, "system:admin", "cannot come from the system user system:admin"),
        ("carol@example.com", HUMANS, "carol@example.com", "four-eyes: carol@example.com"),
        (
            "alice@example.com",
            ("data-scientists", "system:authenticated"),
            "alice@example.com",
            f"alice@example.com is not in the approver group {APPROVER_GROUP}",
        ),
    ],
)
def test_policy_refuses_who_may_not_decide(
    rules: ClusterRules, user: str, groups: tuple[str, ...], approver: str, message: str
) -> None:
    created = _approval()
    _refused(_write(rules, _decided(created, _yes(approver)), created, user, groups), 403, message)


@pytest.mark.parametrize("group", ["", "system:authenticated"])
def test_policy_refuses_a_group_that_admits_anyone(rules: ClusterRules, group: str) -> None:
    """Checked by the admission policy itself (not only the CRD): an empty or system
    approverGroup lets no decision through, even for a member of system:authenticated."""
    created = _approval(group=group)
    decided = _decided(created, _yes("alice@example.com"))
    attributes = rules.attributes(
        operation="UPDATE",
        new=decided,
        old=created,
        username="alice@example.com",
        groups=["system:authenticated"],
        subresource="status",
    )
    verdict = rules.policy_verdict("aiact-modelapproval-decisions", attributes)
    assert verdict is not None and any("would admit anyone" in m for m in verdict), verdict
    create = rules.attributes(
        operation="CREATE",
        new=created,
        old=None,
        username=PIPELINE,
        groups=["system:serviceaccounts"],
    )
    verdict = rules.policy_verdict("aiact-modelapproval-requests", create)
    assert verdict is not None and any("would admit anyone" in m for m in verdict), verdict


def test_policy_requires_the_acknowledgements_the_request_lists(rules: ClusterRules) -> None:
    """A request whose evaluation had too few members of a group to conclude: an approval
    that does not acknowledge that finding is refused; one that does is admitted."""
    finding = "insufficient_data[age_band]"
    created = _approval(acknowledgements=(finding,))
    silent = _decided(created, _yes("alice@example.com"))
    _refused(
        _write(rules, silent, created, "alice@example.com"), 403, "must acknowledge every finding"
    )
    aware = Decision(
        APPROVED,
        "alice@example.com",
        "group too small; accepted",
        EXPIRY[:10] + "T09:00:00Z",
        acknowledged=(finding,),
    )
    assert _write(rules, _decided(created, aware), created, "alice@example.com") is None
    # A rejection needs no acknowledgement.
    assert (
        _write(rules, _decided(created, _no("alice@example.com")), created, "alice@example.com")
        is None
    )


def test_policy_refuses_a_changed_or_extra_decision(rules: ClusterRules) -> None:
    """The admission policy's own check (the CRD has its own): one new entry, nothing changed."""
    one = _approval(_yes("alice@example.com"), required=3)
    changed = _approval(_no("alice@example.com"), _yes("bob@example.com"), required=3)
    attributes = rules.attributes(
        operation="UPDATE",
        new=changed,
        old=one,
        username="bob@example.com",
        groups=list(HUMANS),
        subresource="status",
    )
    verdict = rules.policy_verdict("aiact-modelapproval-decisions", attributes)
    assert verdict is not None and any("exactly one decision" in m for m in verdict), verdict


def test_policy_ignores_writes_that_add_no_decision(rules: ClusterRules) -> None:
    created = _approval()
    create = rules.attributes(
        operation="CREATE",
        new=created,
        old=None,
        username=PIPELINE,
        groups=["system:serviceaccounts"],
    )
    assert rules.policy_verdict("aiact-modelapproval-decisions", create) is None
    assert rules.policy_verdict("aiact-modelapproval-requests", create) == []
    decided = _approval(_yes("alice@example.com"))
    relabelled = copy.deepcopy(decided)
    relabelled["metadata"]["labels"]["reviewed"] = "true"
    update = rules.attributes(
        operation="UPDATE", new=relabelled, old=decided, username="bob", groups=["x"]
    )
    assert rules.policy_verdict("aiact-modelapproval-decisions", update) is None
    assert rules.policy_verdict("aiact-modelapproval-requests", update) is None


def test_creation_below_the_cluster_minimum_is_refused(rules: ClusterRules) -> None:
    """The submitter chooses requiredApprovals; the cluster's ConfigMap sets its floor."""
    development = _approval(required=1, environment="development")
    assert _write(rules, development, None, PIPELINE) is None
    rules.params[PARAMS]["data"]["minRequiredApprovals"] = "2"
    _refused(
        _write(rules, development, None, PIPELINE),
        403,
        "requiredApprovals 1 is below the cluster minimum of 2",
    )
    assert _write(rules, _approval(required=2, environment="development"), None, PIPELINE) is None


def test_production_needs_the_production_minimum(rules: ClusterRules) -> None:
    """A namespace an admin labelled production (or a request saying so) needs
    minRequiredApprovalsProduction, and never fewer than 2 whatever the ConfigMap says; the
    request's environment must agree with the namespace's label."""
    production = {"aiact.eu/environment": "production"}
    claims_development = _approval(required=1, environment="development")
    refusal = _write(rules, claims_development, None, PIPELINE, labels=production)
    _refused(refusal, 403, "below the cluster minimum of 2 for production")
    _refused(refusal, 403, "spec.environment development disagrees with the aiact.eu/environment")
    _refused(
        _write(rules, _approval(required=1), None, PIPELINE),
        403,
        "below the cluster minimum of 2 for production",
    )
    assert _write(rules, _approval(required=2), None, PIPELINE, labels=production) is None
    rules.params[PARAMS]["data"]["minRequiredApprovalsProduction"] = "1"
    _refused(_write(rules, _approval(required=1), None, PIPELINE), 403, "minimum of 2")
    rules.params[PARAMS]["data"]["minRequiredApprovalsProduction"] = "3"
    _refused(
        _write(rules, _approval(required=2), None, PIPELINE, labels=production), 403, "minimum of 3"
    )
    staging = {"aiact.eu/environment": "staging"}
    _refused(
        _write(rules, _approval(required=3), None, PIPELINE, labels=staging),
        403,
        "spec.environment production disagrees",
    )


@pytest.mark.parametrize("broken", ["missing", "not-a-number", "zero"])
def test_creation_is_refused_without_a_usable_policy_config(
    rules: ClusterRules, broken: str
) -> None:
    if broken == "missing":
        del rules.params[PARAMS]
        expected = "failed to find param aiact-system/aiact-approval-policy"
    else:
        value = "two" if broken == "not-a-number" else "0"
        rules.params[PARAMS]["data"]["minRequiredApprovals"] = value
        expected = "must set minRequiredApprovals and minRequiredApprovalsProduction"
    _refused(_write(rules, _approval(required=5), None, PIPELINE), 403, expected)
