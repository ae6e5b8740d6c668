"""Checks of the cluster manifests: every kustomization renders with the real `kubectl kustomize`,
validates offline against the Kubernetes 1.32 schemas (`kubernetes-validate --strict`), and its
rendered objects say what the suite promises (no credentials, hardened containers, separation of
duties in RBAC, a platform configuration per overlay that loads with aiact.platform's validation
and that every service account may read but none may change, pipeline-namespace ConfigMaps that
carry no authority, a reachable metadata store)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiact.platform import (
    PLATFORM_CONFIG_MAP,
    PLATFORM_KEY,
    PLATFORM_NAMESPACE,
    PlatformError,
    parse_platform,
)
from aiact.policy import check_floor, load_policy

REPO = Path(__file__).resolve().parents[2]
KUBERNETES_VERSION = "1.32"
SYSTEM_NAMESPACE = "aiact-system"
DB_SECRET = "aiact-metadata-db"
METADATA_SERVER_IMAGE = "gcr.io/tfx-oss-public/ml_metadata_store_server:1.17.1"

# name -> kustomization directory (relative to the repository root)
KUSTOMIZATIONS: dict[str, str] = {
    "root": ".",
    "base": "manifests/base",
    "dev": "manifests/overlays/dev",
    "prod": "manifests/overlays/prod",
    "pipeline-namespace": "manifests/pipeline-namespace",
}
# Kustomizations deploying the suite's own namespace (as opposed to a pipeline namespace).
SYSTEM_KUSTOMIZATIONS = ["root", "base", "dev", "prod"]
PIPELINE_NS_KUSTOMIZATIONS = ["pipeline-namespace"]

# The environment the platform configuration (ConfigMap aiact-platform) gives a namespace that
# it does not name. The base holds the strict production configuration; overlays/dev replaces it.
EXPECTED_ENVIRONMENT = {
    "root": "development",
    "base": "production",
    "dev": "development",
    "prod": "production",
}
# aiact-config: connection settings only. A profile owner can edit the copy in their namespace,
# so it must carry nothing the platform decides.
EXPECTED_CONFIG = {
    "AIACT_METADATA_URI": "grpc://aiact-metadata.aiact-system.svc.cluster.local:8080",
    "AIACT_S3_ENDPOINT": "minio-service.kubeflow.svc.cluster.local:9000",
}
AUTHORITY_KEYS = {"AIACT_ENVIRONMENT", "AIACT_LEDGER_URI", "AIACT_PLATFORM_CONFIG"}
LEDGER = "s3://aiact-ledger/deployments"
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection", "*"}

CLUSTER_SCOPED_KINDS = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
}
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}

# Mapping keys whose literal string value would be a credential.
CREDENTIAL_KEY = re.compile(
    r"pass(word|wd)?|secret|token|credential|api[-_]?key|access[-_]?key|private[-_]?key",
    re.IGNORECASE,
)
# Keys that name or reference a secret rather than hold one.
REFERENCE_KEYS = {"secretName", "secretKeyRef", "secretRef", "secret", "name", "key"}
# Env vars that carry database identity or credentials.
CREDENTIAL_ENV = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|(^|_)USER$", re.IGNORECASE)


# ----------------------------------------------------------------------------- helpers


def _tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    assert path, f"{name} is not installed (needed to check the manifests)"
    return path


def _render(directory: str) -> str:
    proc = subprocess.run(
        [_tool("kubectl"), "kustomize", str(REPO / directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"kubectl kustomize {directory} failed:\n{proc.stderr}"
    return proc.stdout


def _validate(manifest: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tool("kubernetes-validate"), "-k", KUBERNETES_VERSION, "--strict", "--quiet", "-"],
        input=manifest,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    return {name: _render(directory) for name, directory in KUSTOMIZATIONS.items()}


@pytest.fixture(scope="module")
def objects(rendered: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    return {
        name: [doc for doc in yaml.safe_load_all(text) if doc] for name, text in rendered.items()
    }


def _find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = _find(docs, kind, name)
    assert len(found) == 1, f"expected exactly one {kind}/{name}, found {len(found)}"
    return found[0]


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if obj["kind"] == "Pod":
        return obj["spec"]
    return obj["spec"]["template"]["spec"]


def _workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in POD_TEMPLATE_KINDS | {"CronJob", "Pod"}]


def _containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """Yield (path, key, value) for every mapping entry, recursively."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}", key, value
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _walk(item, f"{path}[{i}]")


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def _selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes LabelSelector semantics (matchLabels AND matchExpressions)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _admits(
    policy: dict[str, Any], pod_labels: dict[str, str], same_namespace: bool, port: int
) -> bool:
    """Whether an Ingress NetworkPolicy admits a pod (namespace labels unknown: only `{}`
    namespace selectors count as matching another namespace)."""
    for rule in policy["spec"].get("ingress", []):
        ports = [p["port"] for p in rule.get("ports", [])]
        if ports and port not in ports:
            continue
        peers = rule.get("from")
        if not peers:
            return True
        for peer in peers:
            if "ipBlock" in peer:
                continue
            ns_selector = peer.get("namespaceSelector")
            if ns_selector is None and not same_namespace:
                continue
            if ns_selector not in (None, {}) and not same_namespace:
                continue
            if _selector_matches(peer.get("podSelector") or {}, pod_labels):
                return True
    return False


def _policies_for(docs: list[dict[str, Any]], pod_labels: dict[str, str]) -> list[dict[str, Any]]:
    return [
        p
        for p in _find(docs, "NetworkPolicy")
        if "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
        and _selector_matches(p["spec"]["podSelector"], pod_labels)
    ]


_QUANTITY = re.compile(r"^([0-9.]+)(m|Ki|Mi|Gi|Ti|k|M|G)?$")
_FACTORS = {
    None: 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
}


def _quantity(value: str | int | float) -> float:
    match = _QUANTITY.match(str(value))
    assert match, f"unparsable quantity {value!r}"
    return float(match.group(1)) * _FACTORS[match.group(2)]


# ----------------------------------------------------------------------------- schema validity


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_kustomization_renders_and_validates(name: str, rendered: dict[str, str]) -> None:
    text = rendered[name]
    assert text.strip(), f"{KUSTOMIZATIONS[name]} rendered nothing"
    proc = _validate(text)
    assert proc.returncode == 0, (
        f"kubernetes-validate -k {KUBERNETES_VERSION} --strict rejected "
        f"{KUSTOMIZATIONS[name]}:\n{proc.stdout}\n{proc.stderr}"
    )


def test_validator_rejects_an_invalid_object() -> None:
    """The validation gate is real: an unknown field fails under --strict."""
    bad = (
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n"
        "spec:\n  ports:\n    - port: 8080\n  portz: 1\n"
    )
    proc = _validate(bad)
    assert proc.returncode != 0, proc.stdout + proc.stderr


def test_root_kustomization_is_the_dev_overlay(rendered: dict[str, str]) -> None:
    assert rendered["root"] == rendered["dev"]
    root = yaml.safe_load((REPO / "kustomization.yaml").read_text())
    assert root["resources"] == ["manifests/overlays/dev"]
    assert "kubectl apply -k manifests/overlays/prod" in (REPO / "kustomization.yaml").read_text()


def test_yaml_lint() -> None:
    config = (
        "{extends: default, rules: {line-length: {max: 100}, document-start: disable,"
        " comments: {min-spaces-from-content: 1}}}"
    )
    proc = subprocess.run(
        [_tool("yamllint"), "--strict", "-d", config, "kustomization.yaml", "manifests"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_kustomizations_use_current_fields() -> None:
    deprecated = {"patchesStrategicMerge", "patchesJson6902", "commonLabels", "bases", "vars"}
    for directory in KUSTOMIZATIONS.values():
        spec = yaml.safe_load((REPO / directory / "kustomization.yaml").read_text())
        assert not deprecated & set(spec), f"{directory} uses deprecated {deprecated & set(spec)}"


# ----------------------------------------------------------------------------- namespaces


@pytest.mark.parametrize("name", SYSTEM_KUSTOMIZATIONS)
def test_system_objects_live_in_aiact_system(
    name: str, objects: dict[str, list[dict[str, Any]]]
) -> None:
    docs = objects[name]
    namespace = _one(docs, "Namespace", SYSTEM_NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in docs:
        meta = doc["metadata"]
        if doc["kind"] in CLUSTER_SCOPED_KINDS:
            assert doc["kind"] == "Namespace", f"cluster-scoped {doc['kind']} in {name}"
            assert "namespace" not in meta, f"{doc['kind']}/{meta['name']} got a namespace"
        else:
            assert meta.get("namespace") == SYSTEM_NAMESPACE, f"{doc['kind']}/{meta['name']}"


@pytest.mark.parametrize("name", PIPELINE_NS_KUSTOMIZATIONS)
def test_pipeline_namespace_objects_are_namespace_agnostic(
    name: str, objects: dict[str, list[dict[str, Any]]]
) -> None:
    spec = yaml.safe_load((REPO / KUSTOMIZATIONS[name] / "kustomization.yaml").read_text())
    assert "namespace" not in spec
    kinds = set()
    for doc in objects[name]:
        kinds.add(doc["kind"])
        assert doc["kind"] not in CLUSTER_SCOPED_KINDS
        assert "namespace" not in doc["metadata"], f"{doc['kind']}/{doc['metadata']['name']}"
    assert kinds == {"ConfigMap", "ServiceAccount", "Role", "RoleBinding"}


# ----------------------------------------------------------------------------- credentials


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_no_literal_credentials(name: str, objects: dict[str, list[dict[str, Any]]]) -> None:
    for doc in objects[name]:
        where = f"{name}: {doc['kind']}/{doc['metadata']['name']}"
        assert doc["kind"] != "Secret", f"{where}: Secrets are created out of band, not committed"
        for path, key, value in _walk(doc):
            if isinstance(key, str) and CREDENTIAL_KEY.search(key) and key not in REFERENCE_KEYS:
                # Booleans are settings (automountServiceAccountToken), not credentials.
                literal = isinstance(value, str | int | float) and not isinstance(value, bool)
                assert not literal, f"{where}{path}: literal value under credential-like key"
        for text in _strings(doc):
            assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", text), f"{where}: URL with password"
            flag = re.search(r"--[\w-]*(password|passwd|secret|token)[\w-]*=(.*)", text, re.I)
            if flag:
                assert re.fullmatch(r"\$\([A-Z_][A-Z0-9_]*\)", flag.group(2)), (
                    f"{where}: {text!r} passes a literal credential"
                )
        for workload in _workloads([doc]):
            for container in _containers(_pod_spec(workload)):
                for env_name, env in _env(container).items():
                    if CREDENTIAL_ENV.search(env_name):
                        ref = env.get("valueFrom", {}).get("secretKeyRef")
                        assert "value" not in env and ref, (
                            f"{where} {container['name']}: env {env_name} must come from a Secret"
                        )
                        assert ref["name"] == DB_SECRET, f"{where}: {env_name} from {ref['name']}"
                # Flags referencing $(VAR) must reference secret-backed env vars.
                for arg in container.get("args", []) + container.get("command", []):
                    flag = re.search(r"--[\w-]*(password|user)[\w-]*=\$\((\w+)\)", arg, re.I)
                    if flag:
                        source = _env(container).get(flag.group(2), {})
                        ref = source.get("valueFrom", {}).get("secretKeyRef", {})
                        assert ref.get("name") == DB_SECRET, f"{where}: {arg!r}"


@pytest.mark.parametrize("name", SYSTEM_KUSTOMIZATIONS)
def test_database_credentials_come_from_the_secret(
    name: str, objects: dict[str, list[dict[str, Any]]]
) -> None:
    docs = objects[name]
    db = _one(docs, "StatefulSet", "aiact-metadata-db")
    (mariadb,) = _pod_spec(db)["containers"]
    env = _env(mariadb)
    expected = {
        "MARIADB_USER": "username",
        "MARIADB_PASSWORD": "password",
        "MARIADB_ROOT_PASSWORD": "root-password",
    }
    for var, key in expected.items():
        assert env[var]["valueFrom"]["secretKeyRef"] == {"name": DB_SECRET, "key": key}, var

    server = _one(docs, "Deployment", "aiact-metadata")
    (container,) = _pod_spec(server)["containers"]
    env = _env(container)
    assert env["DB_USER"]["valueFrom"]["secretKeyRef"] == {"name": DB_SECRET, "key": "username"}
    assert env["DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": DB_SECRET,
        "key": "password",
    }
    assert "--mysql_config_user=$(DB_USER)" in container["args"]
    assert "--mysql_config_password=$(DB_PASSWORD)" in container["args"]


def test_credential_scan_catches_a_literal_password() -> None:
    """The scan above is not vacuous: a literal password in env or args is caught."""
    leaked = {
        "kind": "Deployment",
        "metadata": {"name": "leak"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "env": [{"name": "DB_PASSWORD", "value": "hunter2"}],
                            "args": ["--mysql_config_password=hunter2"],
                        }
                    ]
                }
            }
        },
    }
    with pytest.raises(AssertionError):
        test_no_literal_credentials("leak", {"leak": [leaked]})
    leaked_spec = _pod_spec(leaked)["containers"][0]
    leaked_spec["env"] = []
    with pytest.raises(AssertionError):
        test_no_literal_credentials("leak", {"leak": [leaked]})


# ----------------------------------------------------------------------------- configuration


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
def test_connection_config_map_carries_no_authority(
    name: str, objects: dict[str, list[dict[str, Any]]]
) -> None:
    config = _one(objects[name], "ConfigMap", "aiact-config")
    assert config["data"] == EXPECTED_CONFIG
    assert not AUTHORITY_KEYS & set(config["data"])


def test_no_manifest_sets_an_authority_as_environment() -> None:
    """No kustomization anywhere hands pods the environment or the ledger as env vars."""
    for path in sorted((REPO / "manifests").rglob("*.yaml")):
        for key in AUTHORITY_KEYS:
            assert f"{key}=" not in path.read_text(), f"{path.relative_to(REPO)} sets {key}"
    assert not (REPO / "manifests/pipeline-namespace-prod").exists()


def _platform_text(docs: list[dict[str, Any]]) -> str:
    config_map = _one(docs, "ConfigMap", PLATFORM_CONFIG_MAP)
    assert config_map["metadata"]["namespace"] == PLATFORM_NAMESPACE
    assert set(config_map["data"]) == {PLATFORM_KEY}
    return str(config_map["data"][PLATFORM_KEY])


def _gate_thresholds(node: Any, path: str = "") -> dict[str, Any]:
    """Every min_*/max_*/require_* leaf of a policy, by dotted path."""
    found: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, dict):
            found.update(_gate_thresholds(value, f"{path}{key}."))
        elif key.startswith(("min_", "max_", "require_")):
            found[f"{path}{key}"] = value
    return found


@pytest.mark.parametrize("name", list(EXPECTED_ENVIRONMENT))
def test_platform_configuration_loads_with_its_validation(
    name: str, objects: dict[str, list[dict[str, Any]]]
) -> None:
    text = _platform_text(objects[name])
    source = f"{name}: ConfigMap {PLATFORM_NAMESPACE}/{PLATFORM_CONFIG_MAP}"
    config = parse_platform(text, namespace="kubeflow-user-example-com", source=source)
    assert config.environment == EXPECTED_ENVIRONMENT[name]
    assert config.approval_backend == "kubernetes://"  # the pipeline's own namespace
    assert config.ledger_uri == LEDGER
    assert config.approver_group == "aiact-approvers"
    assert 0 < config.max_approval_timeout_s <= 7 * 24 * 3600
    # Every namespace entry loads too (parse_platform validates them all); check by name.
    document = yaml.safe_load(text)
    for namespace in document.get("namespaces") or {}:
        parse_platform(text, namespace=namespace, source=source)
    # The suite's own gate policy meets the floor.
    assert check_floor(load_policy(), config.policy_floor) == []


def test_dev_platform_configuration(objects: dict[str, list[dict[str, Any]]]) -> None:
    text = _platform_text(objects["dev"])
    config = parse_platform(text, namespace="team-a", source="dev")
    assert (config.environment, config.required_approvals) == ("development", 1)
    assert dict(config.policy_floor) == {}


def test_prod_platform_configuration(objects: dict[str, list[dict[str, Any]]]) -> None:
    assert _platform_text(objects["prod"]) == _platform_text(objects["base"])
    config = parse_platform(_platform_text(objects["prod"]), namespace="team-a", source="prod")
    assert (config.environment, config.required_approvals) == ("production", 2)
    # The floor holds exactly the key thresholds of the bundled use case's policy.yaml (not
    # its split fractions: a use case chooses how to split its data; nor the bias examination's
    # blocks for the credit attributes: a floor key every use case must carry would make every
    # other use case fail).
    policy_thresholds = _gate_thresholds(load_policy())
    floor = _gate_thresholds(config.to_dict()["policy_floor"])
    for key in [
        "evaluation.min_accuracy",
        "evaluation.min_roc_auc",
        "evaluation.fairness.sex.max_equalized_odds_difference",
        "evaluation.fairness.age_band.min_demographic_parity_ratio",
        "data_quality.min_rows",
        "integration.max_prediction_mismatch_rate",
    ]:
        assert floor[key] == policy_thresholds[key], key
    numeric = {
        k: v
        for k, v in policy_thresholds.items()
        if not k.split(".")[-1].startswith("req")
        and not k.startswith("features.split_fractions")
        and not (k.startswith("data_quality.bias.") and k.count(".") > 2)
    }
    assert floor == numeric
    # ...and it bites: a loosened fairness limit breaks it.
    loosened = load_policy()
    loosened["evaluation"]["fairness"]["sex"]["max_equalized_odds_difference"] = 0.3
    assert check_floor(loosened, config.policy_floor) == [
        "evaluation.fairness.sex.max_equalized_odds_difference is 0.3, looser than the "
        "platform floor 0.15"
    ]


def test_a_production_namespace_is_declared_in_the_platform_configuration(
    objects: dict[str, list[dict[str, Any]]],
) -> None:
    """What replaced manifests/pipeline-namespace-prod: a `namespaces:` entry."""
    document = yaml.safe_load(_platform_text(objects["dev"]))
    document["namespaces"] = {"team-prod": {"environment": "production", "required_approvals": 2}}
    text = yaml.safe_dump(document)
    assert parse_platform(text, namespace="team-prod", source="dev").environment == "production"
    assert parse_platform(text, namespace="team-dev", source="dev").environment == "development"
    document["namespaces"]["team-prod"]["required_approvals"] = 1
    with pytest.raises(PlatformError, match="at least 2 in production"):
        parse_platform(yaml.safe_dump(document), namespace="team-dev", source="dev")


def test_metadata_uri_points_at_the_metadata_service(
    objects: dict[str, list[dict[str, Any]]],
) -> None:
    docs = objects["dev"]
    uri = _one(docs, "ConfigMap", "aiact-config")["data"]["AIACT_METADATA_URI"]
    match = re.fullmatch(r"grpc://([\w-]+)\.([\w-]+)\.svc\.cluster\.local:(\d+)", uri)
    assert match, uri
    service = _one(docs, "Service", match.group(1))
    assert service["metadata"]["namespace"] == match.group(2)
    assert int(match.group(3)) in [p["port"] for p in service["spec"]["ports"]]


# ----------------------------------------------------------------------------- workloads


@pytest.mark.parametrize("name", SYSTEM_KUSTOMIZATIONS)
def test_every_container_is_limited_and_hardened(
    name: str, objects: dict[str, list[dict[str, Any]]]
) -> None:
    workloads = _workloads(objects[name])
    assert {w["metadata"]["name"] for w in workloads} == {"aiact-metadata", "aiact-metadata-db"}
    for workload in workloads:
        pod = _pod_spec(workload)
        pod_ctx = pod.get("securityContext", {})
        for container in _containers(pod):
            where = f"{name}: {workload['kind']}/{workload['metadata']['name']}/{container['name']}"
            resources = container.get("resources", {})
            assert {"cpu", "memory"} <= set(resources.get("limits", {})), where
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), where
            for res in ("cpu", "memory"):
                request = _quantity(resources["requests"][res])
                assert request <= _quantity(resources["limits"][res]), where
            ctx = container.get("securityContext", {})
            assert ctx.get("allowPrivilegeEscalation") is False, where
            assert ctx.get("readOnlyRootFilesystem") is True, where
            assert "ALL" in ctx.get("capabilities", {}).get("drop", []), where
            assert not ctx.get("capabilities", {}).get("add"), where
            assert ctx.get("privileged") is not True, where
            assert ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is True, where
            assert ctx.get("runAsUser", pod_ctx.get("runAsUser", 1)) != 0, where
            seccomp = ctx.get("seccompProfile", pod_ctx.get("seccompProfile", {}))
            assert seccomp.get("type") == "RuntimeDefault", where
            assert "livenessProbe" in container and "readinessProbe" in container, where
            image = container["image"]
            assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), where
        assert pod.get("automountServiceAccountToken") is False, workload["metadata"]["name"]
        assert not pod.get("hostNetwork") and not pod.get("hostPID"), workload["metadata"]["name"]


@pytest.mark.parametrize("name", SYSTEM_KUSTOMIZATIONS)
def test_metadata_server(name: str, objects: dict[str, list[dict[str, Any]]]) -> None:
    docs = objects[name]
    service = _one(docs, "Service", "aiact-metadata")
    (port,) = service["spec"]["ports"]
    assert port["port"] == 8080
    deployment = _one(docs, "Deployment", "aiact-metadata")
    template_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert _selector_matches({"matchLabels": service["spec"]["selector"]}, template_labels)
    assert _selector_matches(deployment["spec"]["selector"], template_labels)
    (container,) = _pod_spec(deployment)["containers"]
    assert container["image"] == METADATA_SERVER_IMAGE
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port["targetPort"] in (8080, "grpc") and ports["grpc"] == 8080
    args = dict(a.removeprefix("--").split("=", 1) for a in container["args"])
    assert args["grpc_port"] == "8080"
    assert args["mysql_config_port"] == "3306"
    assert args["enable_database_upgrade"] == "true"

    # It connects to the MariaDB StatefulSet through that StatefulSet's headless Service.
    db = _one(docs, "StatefulSet", "aiact-metadata-db")
    db_service = _one(docs, "Service", args["mysql_config_host"])
    assert db["spec"]["serviceName"] == db_service["metadata"]["name"]
    assert db_service["spec"]["clusterIP"] == "None"
    assert [p["port"] for p in db_service["spec"]["ports"]] == [3306]
    db_labels = db["spec"]["template"]["metadata"]["labels"]
    assert _selector_matches({"matchLabels": db_service["spec"]["selector"]}, db_labels)
    (mariadb,) = _pod_spec(db)["containers"]
    assert mariadb["image"] == "mariadb:10.11"
    assert _env(mariadb)["MARIADB_DATABASE"]["value"] == args["mysql_config_database"]
    claims = {c["metadata"]["name"] for c in db["spec"]["volumeClaimTemplates"]}
    mounts = {m["name"]: m["mountPath"] for m in mariadb["volumeMounts"]}
    assert mounts["data"] == "/var/lib/mysql" and "data" in claims


def test_overlay_sizes(objects: dict[str, list[dict[str, Any]]]) -> None:
    def sizes(name: str) -> tuple[int, float, float, float]:
        docs = objects[name]
        server = _one(docs, "Deployment", "aiact-metadata")
        db = _one(docs, "StatefulSet", "aiact-metadata-db")
        (db_container,) = _pod_spec(db)["containers"]
        (server_container,) = _pod_spec(server)["containers"]
        storage = db["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]
        return (
            server["spec"]["replicas"],
            _quantity(server_container["resources"]["limits"]["memory"]),
            _quantity(db_container["resources"]["limits"]["memory"]),
            _quantity(storage["storage"]),
        )

    dev, prod = sizes("dev"), sizes("prod")
    assert dev[0] == 1
    assert prod[0] >= 2
    assert all(p > d for p, d in zip(prod[1:], dev[1:], strict=True)), (dev, prod)


def test_prod_has_a_disruption_budget_for_the_metadata_server(
    objects: dict[str, list[dict[str, Any]]],
) -> None:
    assert not _find(objects["dev"], "PodDisruptionBudget")
    docs = objects["prod"]
    (pdb,) = _find(docs, "PodDisruptionBudget")
    deployment = _one(docs, "Deployment", "aiact-metadata")
    template_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert _selector_matches(pdb["spec"]["selector"], template_labels)
    db_labels = _one(docs, "StatefulSet", "aiact-metadata-db")["spec"]["template"]["metadata"]
    assert not _selector_matches(pdb["spec"]["selector"], db_labels["labels"])
    assert 1 <= pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"]


def test_environment_labels_stay_out_of_selectors(
    objects: dict[str, list[dict[str, Any]]],
) -> None:
    """Selectors are immutable: moving between overlays must not require recreating objects."""
    for name in ("dev", "prod"):
        for workload in _workloads(objects[name]):
            selector = workload["spec"]["selector"]["matchLabels"]
            assert "aiact.eu/environment" not in selector
            base = _one(objects["base"], workload["kind"], workload["metadata"]["name"])
            assert selector == base["spec"]["selector"]["matchLabels"]


# ----------------------------------------------------------------------------- network policies


@pytest.mark.parametrize("name", SYSTEM_KUSTOMIZATIONS)
def test_network_policies(name: str, objects: dict[str, list[dict[str, Any]]]) -> None:
    docs = objects[name]
    server_labels = _one(docs, "Deployment", "aiact-metadata")["spec"]["template"]["metadata"][
        "labels"
    ]
    db_labels = _one(docs, "StatefulSet", "aiact-metadata-db")["spec"]["template"]["metadata"][
        "labels"
    ]
    db_policies = _policies_for(docs, db_labels)
    server_policies = _policies_for(docs, server_labels)
    assert db_policies and server_policies

    kfp_pod = {"pipelines.kubeflow.org/v2_component": "true", "workflows.argoproj.io/workflow": "x"}
    opted_in = {"aiact.eu/metadata-client": "true"}
    stranger = {"app": "something-else"}

    def admitted(
        policies: list[dict[str, Any]], labels: dict[str, str], same: bool, port: int
    ) -> bool:
        return any(_admits(p, labels, same, port) for p in policies)

    # MariaDB: only the metadata server, only on 3306.
    assert admitted(db_policies, server_labels, True, 3306)
    assert not admitted(db_policies, server_labels, True, 8080)
    for labels, same in [(kfp_pod, False), (kfp_pod, True), (stranger, True), (opted_in, False)]:
        assert not admitted(db_policies, labels, same, 3306), labels
    # Metadata server: its namespace and pipeline pods anywhere, on 8080 only.
    assert admitted(server_policies, stranger, True, 8080)
    assert admitted(server_policies, kfp_pod, False, 8080)
    assert admitted(server_policies, opted_in, False, 8080)
    assert not admitted(server_policies, stranger, False, 8080)
    assert not admitted(server_policies, kfp_pod, False, 3306)


# ----------------------------------------------------------------------------- RBAC


def _verbs(role: dict[str, Any], resource: str) -> set[str]:
    verbs: set[str] = set()
    for rule in role.get("rules", []):
        groups = rule.get("apiGroups", [])
        resources = rule.get("resources", [])
        if ("aiact.eu" in groups or "*" in groups) and (resource in resources or "*" in resources):
            verbs |= set(rule.get("verbs", []))
    return verbs


@pytest.mark.parametrize("name", PIPELINE_NS_KUSTOMIZATIONS)
def test_pipeline_runner_can_request_but_not_decide_approvals(
    name: str, objects: dict[str, list[dict[str, Any]]]
) -> None:
    docs = objects[name]
    role = _one(docs, "Role", "aiact-pipeline-runner")
    assert _verbs(role, "modelapprovals") == {"get", "list", "watch", "create"}
    for resource in ("modelapprovals", "modelapprovals/status"):
        assert not {"update", "patch", "delete", "deletecollection", "*"} & _verbs(role, resource)
    # Nothing beyond approvals.
    for rule in role["rules"]:
        assert rule["apiGroups"] == ["aiact.eu"]
        assert set(rule["resources"]) <= {"modelapprovals", "deploymentrequests"}

    _one(docs, "ServiceAccount", "aiact-pipeline-runner")
    binding = _one(docs, "RoleBinding", "aiact-pipeline-runner")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "aiact-pipeline-runner",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "aiact-pipeline-runner"}]


@pytest.mark.parametrize("name", PIPELINE_NS_KUSTOMIZATIONS)
def test_approver_role(name: str, objects: dict[str, list[dict[str, Any]]]) -> None:
    docs = objects[name]
    role = _one(docs, "Role", "aiact-approver")
    for resource in ("modelapprovals", "modelapprovals/status"):
        assert _verbs(role, resource) == {"get", "list", "watch", "patch"}, resource
    # Bound by SREs to their approver group, never shipped bound.
    assert not [b for b in _find(docs, "RoleBinding") if b["roleRef"]["name"] == "aiact-approver"]
    # The pipeline's own ServiceAccount is never bound to the approver role.
    for binding in _find(docs, "RoleBinding"):
        if binding["roleRef"]["name"] != "aiact-pipeline-runner":
            names = {s["name"] for s in binding["subjects"]}
            assert "aiact-pipeline-runner" not in names


def _rules_on_configmaps(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        rule
        for rule in role.get("rules", [])
        if set(rule.get("apiGroups", [])) & {"", "*"}
        and set(rule.get("resources", [])) & {"configmaps", "*"}
    ]


@pytest.mark.parametrize("name", SYSTEM_KUSTOMIZATIONS)
def test_platform_configuration_is_readable_by_service_accounts_only_by_name(
    name: str, objects: dict[str, list[dict[str, Any]]]
) -> None:
    docs = objects[name]
    role = _one(docs, "Role", "aiact-platform-reader")
    assert role["metadata"]["namespace"] == PLATFORM_NAMESPACE
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [PLATFORM_CONFIG_MAP],
            "verbs": ["get"],
        }
    ]
    binding = _one(docs, "RoleBinding", "aiact-platform-reader")
    assert binding["metadata"]["namespace"] == PLATFORM_NAMESPACE
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "aiact-platform-reader",
    }
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:serviceaccounts"}
    ]
    # Nothing else in aiact-system grants anything (so nothing grants write there).
    assert [r["metadata"]["name"] for r in _find(docs, "Role")] == ["aiact-platform-reader"]
    assert [b["metadata"]["name"] for b in _find(docs, "RoleBinding")] == ["aiact-platform-reader"]
    assert not _find(docs, "ClusterRole") and not _find(docs, "ClusterRoleBinding")


def test_no_role_anywhere_grants_write_on_config_maps(
    objects: dict[str, list[dict[str, Any]]],
) -> None:
    cluster = [doc for doc in yaml.safe_load_all(_render("manifests/cluster")) if doc]
    roles = [
        (name, role)
        for name, docs in [*objects.items(), ("cluster", cluster)]
        for role in [*_find(docs, "Role"), *_find(docs, "ClusterRole")]
    ]
    assert roles
    for name, role in roles:
        for rule in _rules_on_configmaps(role):
            where = f"{name}: {role['kind']}/{role['metadata']['name']}"
            assert not WRITE_VERBS & set(rule["verbs"]), f"{where} may change ConfigMaps"
            assert rule.get("resourceNames") == [PLATFORM_CONFIG_MAP], where


def test_config_map_write_check_catches_a_writer() -> None:
    """The check above is not vacuous."""
    writer = {"rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["patch"]}]}
    assert _rules_on_configmaps(writer)
    wildcard = {"rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}
    assert _rules_on_configmaps(wildcard)
