"""The deployer's manifests (manifests/deployer), rendered with the real `kubectl kustomize` and
validated offline (`kubernetes-validate --strict`, Kubernetes 1.32), and the RBAC of everything
the suite ships evaluated the way the API server's RBAC authorizer would: every Role,
ClusterRole, RoleBinding and ClusterRoleBinding of manifests/deployer, manifests/cluster,
manifests/overlays/prod and manifests/pipeline-namespace (applied to a pipeline namespace) turned
into "may SUBJECT do VERB on RESOURCE in NAMESPACE". Not evaluated: aggregation of ClusterRoles
by label (the suite's aggregated role only grants read), resourceNames (treated as granting), and
whatever else a cluster's admins bind (e.g. Kubeflow's default-editor with kubeflow-edit in a
profile namespace; that account must not be the one runs use, see manifests/README.md)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PIPELINE_NAMESPACE = "team-credit-prod"
PIPELINE_SA = f"system:serviceaccount:{PIPELINE_NAMESPACE}:aiact-pipeline-runner"
DEPLOYER_SA = "system:serviceaccount:aiact-system:aiact-deployer"
SERVING_NAMESPACES = ("aiact-serving", "aiact-serving-staging", "aiact-serving-dev")
WRITE = ("create", "update", "patch", "delete")


def _tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    assert path, f"{name} is not installed (needed to check the manifests)"
    return path


def _render(directory: str) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [_tool("kubectl"), "kustomize", str(REPO / directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


@pytest.fixture(scope="module")
def deployer() -> list[dict[str, Any]]:
    return _render("manifests/deployer")


@pytest.fixture(scope="module")
def everything(deployer: list[dict[str, Any]]) -> list[dict[str, Any]]:
    pipeline = _render("manifests/pipeline-namespace")
    for doc in pipeline:  # kubectl apply -k manifests/pipeline-namespace -n NAMESPACE
        doc["metadata"]["namespace"] = PIPELINE_NAMESPACE
    return [
        *deployer,
        *_render("manifests/cluster"),
        *_render("manifests/overlays/prod"),
        *pipeline,
    ]


@dataclass(frozen=True)
class Identity:
    user: str
    groups: tuple[str, ...]


def service_account(user: str) -> Identity:
    namespace = user.split(":")[2]
    return Identity(
        user,
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
    )


def _subject_matches(subject: dict[str, Any], who: Identity, binding_namespace: str) -> bool:
    kind = subject["kind"]
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return who.user == f"system:serviceaccount:{namespace}:{subject['name']}"
    if kind == "User":
        return who.user == subject["name"]
    if kind == "Group":
        return subject["name"] in who.groups
    return False


def _rule_allows(rule: dict[str, Any], verb: str, group: str, resource: str) -> bool:
    return (
        (group in rule.get("apiGroups", []) or "*" in rule.get("apiGroups", []))
        and (resource in rule.get("resources", []) or "*" in rule.get("resources", []))
        and (verb in rule.get("verbs", []) or "*" in rule.get("verbs", []))
    )


def allowed(
    docs: list[dict[str, Any]], who: Identity, verb: str, group: str, resource: str, namespace: str
) -> bool:
    """Whether RBAC lets `who` do `verb` on `group`/`resource` in `namespace` ('' = cluster
    scope), from the shipped Roles and bindings."""
    roles = {
        (d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d
        for d in docs
        if d["kind"] in ("Role", "ClusterRole")
    }
    for binding in docs:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        bound_in = binding["metadata"].get("namespace", "")
        if binding["kind"] == "RoleBinding" and bound_in != namespace:
            continue  # a RoleBinding grants only in its own namespace
        if not any(_subject_matches(s, who, bound_in) for s in binding.get("subjects", [])):
            continue
        ref = binding["roleRef"]
        role = roles.get((ref["kind"], bound_in if ref["kind"] == "Role" else "", ref["name"]))
        if role and any(_rule_allows(r, verb, group, resource) for r in role.get("rules", [])):
            return True
    return False


def test_deployer_manifests_render_and_validate(deployer: list[dict[str, Any]]) -> None:
    manifest = yaml.safe_dump_all(deployer)
    proc = subprocess.run(
        [_tool("kubernetes-validate"), "-k", "1.32", "--strict", "--quiet", "-"],
        input=manifest,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    kinds = {(d["kind"], d["metadata"]["name"]) for d in deployer}
    assert ("CustomResourceDefinition", "deploymentrequests.aiact.eu") in kinds
    assert ("Deployment", "aiact-deployer") in kinds
    assert {("Namespace", n) for n in SERVING_NAMESPACES} <= kinds


def test_controller_runs_kopf_under_its_own_hardened_identity(
    deployer: list[dict[str, Any]],
) -> None:
    (deployment,) = [d for d in deployer if d["kind"] == "Deployment"]
    assert deployment["metadata"]["namespace"] == "aiact-system"
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "aiact-deployer"
    (container,) = pod["containers"]
    assert container["command"][:2] == ["kopf", "run"]
    assert "aiact.deployer.operator" in container["args"]
    ctx = container["securityContext"]
    assert ctx["allowPrivilegeEscalation"] is False and ctx["readOnlyRootFilesystem"] is True
    assert ctx["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    assert "livenessProbe" in container and "readinessProbe" in container
    image = container["image"]
    assert image.startswith("ghcr.io/aiact-project/aiact-control:") and ":latest" not in image
    # The ledger writer's credentials reach this pod only.
    assert container["envFrom"] == [{"secretRef": {"name": "aiact-ledger-writer"}}]


def test_the_pipeline_cannot_deploy_or_decide(everything: list[dict[str, Any]]) -> None:
    pipeline = service_account(PIPELINE_SA)
    # It may ask for a deployment in its own namespace and watch the answer...
    for verb in ("create", "get", "watch"):
        assert allowed(
            everything, pipeline, verb, "aiact.eu", "deploymentrequests", PIPELINE_NAMESPACE
        )
    # ...but never write the answer, nor serving, nor the ledger's credentials.
    for verb in WRITE:
        assert not allowed(
            everything, pipeline, verb, "aiact.eu", "deploymentrequests/status", PIPELINE_NAMESPACE
        ), verb
        for namespace in (*SERVING_NAMESPACES, PIPELINE_NAMESPACE, ""):
            for group, resource in (
                ("serving.kserve.io", "inferenceservices"),
                ("networking.istio.io", "virtualservices"),
            ):
                assert not allowed(everything, pipeline, verb, group, resource, namespace), (
                    verb,
                    resource,
                    namespace,
                )
    for verb in ("update", "patch", "delete"):
        assert not allowed(
            everything, pipeline, verb, "aiact.eu", "deploymentrequests", PIPELINE_NAMESPACE
        ), "a submitted request is not the pipeline's to change"
    for verb in ("get", "list", "watch", *WRITE):
        assert not allowed(everything, pipeline, verb, "", "secrets", "aiact-system"), verb


def test_the_deployer_can_do_exactly_its_job(everything: list[dict[str, Any]]) -> None:
    controller = service_account(DEPLOYER_SA)
    for namespace in (PIPELINE_NAMESPACE, ""):
        for verb in ("get", "list", "watch", "patch"):
            assert allowed(
                everything, controller, verb, "aiact.eu", "deploymentrequests", namespace
            )
        assert allowed(
            everything, controller, "patch", "aiact.eu", "deploymentrequests/status", namespace
        )
        assert allowed(everything, controller, "get", "aiact.eu", "modelapprovals", namespace)
        assert not allowed(
            everything, controller, "create", "aiact.eu", "deploymentrequests", namespace
        )
        assert not allowed(
            everything, controller, "patch", "aiact.eu", "modelapprovals/status", namespace
        )
    for namespace in SERVING_NAMESPACES:
        for verb in ("create", "patch", "get", "watch"):
            assert allowed(
                everything, controller, verb, "serving.kserve.io", "inferenceservices", namespace
            )
            assert allowed(
                everything, controller, verb, "networking.istio.io", "virtualservices", namespace
            )
        assert not allowed(
            everything, controller, "delete", "serving.kserve.io", "inferenceservices", namespace
        )
    # Serving anywhere else (a pipeline namespace, cluster-wide) is not the deployer's either.
    for namespace in (PIPELINE_NAMESPACE, "aiact-system", ""):
        assert not allowed(
            everything, controller, "create", "serving.kserve.io", "inferenceservices", namespace
        )
    for verb in WRITE:
        assert not allowed(everything, controller, verb, "", "configmaps", "aiact-system")
    assert not allowed(everything, controller, "get", "", "secrets", "aiact-system")


def test_the_evaluator_is_not_vacuous(everything: list[dict[str, Any]]) -> None:
    pipeline = service_account(PIPELINE_SA)
    leak = [
        {
            "kind": "ClusterRole",
            "metadata": {"name": "too-much"},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
        },
        {
            "kind": "RoleBinding",
            "metadata": {"name": "oops", "namespace": "aiact-serving"},
            "roleRef": {"kind": "ClusterRole", "name": "too-much"},
            "subjects": [{"kind": "Group", "name": "system:serviceaccounts"}],
        },
    ]
    docs = [*everything, *leak]
    assert allowed(
        docs, pipeline, "create", "serving.kserve.io", "inferenceservices", "aiact-serving"
    )
    assert not allowed(
        docs, pipeline, "create", "serving.kserve.io", "inferenceservices", "aiact-serving-dev"
    )
