"""Platform configuration: closed environment names, validation at load, run parameters that
may narrow but never widen the platform's settings, the gate-policy floor, and loading from
ConfigMap aiact-system/aiact-platform through the official `kubernetes` client against kmock's
KubernetesEmulator on 127.0.0.1 (an HTTP emulation of the API: no RBAC is enforced there, so
the read-only grant is checked on the manifests in tests/manifests)."""

from __future__ import annotations

import asyncio
import json
import math
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp.web
import kmock
import pytest
import yaml
from kubernetes import client

from aiact.platform import (
    DEFAULTS_SOURCE,
    ENVIRONMENTS,
    PLATFORM_CONFIG_ENV,
    PlatformConfig,
    PlatformError,
    RunSettings,
    development_defaults,
    enforce_policy_floor,
    load_platform,
    parse_environment,
    parse_platform,
    resolve_run_settings,
)
from aiact.policy import check_floor, load_policy

REPO = Path(__file__).resolve().parents[2]
SOURCE = "ConfigMap aiact-system/aiact-platform"
NAMESPACE = "team-credit"
PROD_NAMESPACE = "team-credit-prod"
LEDGER = "s3://aiact-ledger/deployments"

PLATFORM_DOCUMENT: dict[str, Any] = {
    "version": 1,
    "defaults": {
        "environment": "development",
        "required_approvals": 1,
        "approver_group": "aiact-approvers",
        "ledger_uri": LEDGER,
        "approval_backend": "kubernetes://",
        "max_approval_timeout_s": 604800,
    },
    "namespaces": {
        PROD_NAMESPACE: {
            "environment": "production",
            "required_approvals": 2,
            "approver_group": "credit-risk-approvers",
            "max_approval_timeout_s": 86400,
            "policy_floor": {"evaluation": {"min_accuracy": 0.7}},
        },
        "team-credit-staging": {"environment": "staging"},
    },
    "policy_floor": {"evaluation": {"fairness": {"sex": {"max_equalized_odds_difference": 0.15}}}},
}


def platform(**overrides: Any) -> PlatformConfig:
    """A valid production configuration, with fields replaced."""
    fields: dict[str, Any] = {
        "environment": "production",
        "required_approvals": 2,
        "approver_group": "aiact-approvers",
        "ledger_uri": LEDGER,
        "approval_backend": "kubernetes://",
        "max_approval_timeout_s": 86400.0,
        "policy_floor": {},
        "namespace": NAMESPACE,
        "source": f"{SOURCE} (namespace {NAMESPACE})",
    }
    fields.update(overrides)
    return PlatformConfig(**fields)


def development(**overrides: Any) -> PlatformConfig:
    """A development configuration with no ledger and any local backend."""
    base: dict[str, Any] = {
        "environment": "development",
        "required_approvals": 1,
        "ledger_uri": "",
        "approval_backend": "",
    }
    return platform(**{**base, **overrides})


# ----------------------------------------------------------------------------- environments


@pytest.mark.parametrize(
    "value",
    ["Production", "production ", " production", "prod", "PRODUCTION", "", "Staging", "dev"],
)
def test_parse_environment_refuses_every_other_spelling(value: str) -> None:
    with pytest.raises(PlatformError) as caught:
        parse_environment(value)
    message = str(caught.value)
    assert repr(value) in message
    assert "development, staging, production" in message
    assert "\n" not in message


@pytest.mark.parametrize("value", ENVIRONMENTS)
def test_parse_environment_accepts_the_exact_names(value: str) -> None:
    assert parse_environment(value) == value


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("overrides", "field", "why"),
    [
        ({"required_approvals": 1}, "required_approvals", "at least 2 in production"),
        ({"required_approvals": 0, "environment": "staging"}, "required_approvals", "at least 1"),
        ({"required_approvals": True}, "required_approvals", "integer"),
        ({"approver_group": "system:authenticated"}, "approver_group", "system group"),
        ({"approver_group": "system:serviceaccounts"}, "approver_group", "system group"),
        ({"approver_group": ""}, "approver_group", "non-empty"),
        ({"approver_group": " aiact-approvers"}, "approver_group", "whitespace"),
        ({"approval_backend": "local:/tmp/approvals"}, "approval_backend", "only in development"),
        ({"approval_backend": ""}, "approval_backend", "only in development"),
        ({"approval_backend": "https://elsewhere"}, "approval_backend", "neither"),
        ({"approval_backend": "kubernetes://Team_A"}, "approval_backend", "namespace"),
        ({"ledger_uri": ""}, "ledger_uri", "in production"),
        ({"environment": "Production"}, "environment", "exact spelling"),
        ({"max_approval_timeout_s": 0}, "max_approval_timeout_s", "positive"),
        ({"max_approval_timeout_s": math.inf}, "max_approval_timeout_s", "positive"),
        ({"policy_floor": {"evaluation": {"min_accuracy": "high"}}}, "min_accuracy", "number"),
        ({"policy_floor": {"require_x": "yes"}}, "require_x", "true or false"),
        ({"namespace": "Team_Credit", "source": SOURCE}, "namespace", "valid"),
    ],
)
def test_invalid_configuration_is_refused_naming_the_field(
    overrides: dict[str, Any], field: str, why: str
) -> None:
    with pytest.raises(PlatformError) as caught:
        platform(**overrides)
    message = str(caught.value)
    assert field in message and why in message, message
    assert message.startswith(f"platform configuration ({SOURCE}"), message
    assert "\n" not in message


def test_staging_also_needs_a_kubernetes_backend() -> None:
    with pytest.raises(PlatformError, match="staging needs a kubernetes:// backend"):
        platform(environment="staging", approval_backend="local:/tmp/a")
    platform(environment="staging", required_approvals=1, ledger_uri="")  # otherwise valid


def test_development_allows_a_local_backend_and_no_ledger() -> None:
    config = development(approval_backend="local:/tmp/approvals")
    assert config.approval_backend == "local:/tmp/approvals"
    assert development().ledger_uri == ""


def test_a_system_group_is_refused_in_development_too() -> None:
    with pytest.raises(PlatformError, match="approver_group 'system:authenticated'"):
        development(approver_group="system:authenticated")


def test_configuration_is_immutable_and_hashes_canonically() -> None:
    floor = {"evaluation": {"min_accuracy": 0.7}}
    config = platform(policy_floor=floor)
    floor["evaluation"]["min_accuracy"] = 0.1  # the caller's dict does not reach the config
    assert config.policy_floor["evaluation"]["min_accuracy"] == 0.7
    with pytest.raises(TypeError):
        config.policy_floor["evaluation"]["min_accuracy"] = 0.1
    as_dict = config.to_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert as_dict["policy_floor"] == {"evaluation": {"min_accuracy": 0.7}}
    assert config.sha256() == platform(policy_floor={"evaluation": {"min_accuracy": 0.7}}).sha256()
    assert re.fullmatch(r"[0-9a-f]{64}", config.sha256())
    assert config.sha256() != replace(config, required_approvals=3).sha256()
    assert config.sha256() != platform(policy_floor={"evaluation": {"min_accuracy": 0.8}}).sha256()


def test_a_list_valued_floor_compares_with_the_policy_list() -> None:
    config = platform(policy_floor={"data_quality": {"groups": ["sex", "age_band"]}})
    enforce_policy_floor({"data_quality": {"groups": ["sex", "age_band"]}}, config)
    with pytest.raises(PlatformError, match="groups is"):
        enforce_policy_floor({"data_quality": {"groups": ["sex"]}}, config)


# ----------------------------------------------------------------------------- the document


def test_parse_platform_applies_the_namespace_overrides() -> None:
    text = yaml.safe_dump(PLATFORM_DOCUMENT)
    prod = parse_platform(text, namespace=PROD_NAMESPACE, source=SOURCE)
    assert (prod.environment, prod.required_approvals) == ("production", 2)
    assert prod.approver_group == "credit-risk-approvers"
    assert prod.max_approval_timeout_s == 86400.0
    assert prod.ledger_uri == LEDGER  # from the defaults
    assert prod.source == f"{SOURCE} (namespace {PROD_NAMESPACE})"
    # The namespace's floor is merged over the global one.
    assert prod.to_dict()["policy_floor"] == {
        "evaluation": {
            "min_accuracy": 0.7,
            "fairness": {"sex": {"max_equalized_odds_difference": 0.15}},
        }
    }
    other = parse_platform(text, namespace=NAMESPACE, source=SOURCE)
    assert (other.environment, other.required_approvals) == ("development", 1)
    assert other.to_dict()["policy_floor"] == PLATFORM_DOCUMENT["policy_floor"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["defaults"].pop("ledger_uri"), "missing field(s) ledger_uri"),
        (lambda d: d["defaults"].update(required_approval=3), "unknown field(s) required_approval"),
        (lambda d: d.update(namespace={}), "unknown key(s) namespace"),
        (lambda d: d.pop("defaults"), "no 'defaults' section"),
        (lambda d: d.update(version=2), "version 2 is not 1"),
        # A broken entry for ANOTHER namespace is still found when the document is read.
        (
            lambda d: d["namespaces"][PROD_NAMESPACE].update(required_approvals=1),
            f"namespace {PROD_NAMESPACE}): required_approvals must be at least 2 in production",
        ),
        (
            lambda d: d["namespaces"].update({"Bad_Name": {}}),
            "'Bad_Name' is not a valid namespace name",
        ),
    ],
)
def test_parse_platform_refuses_a_malformed_document(edit: Any, message: str) -> None:
    document = json.loads(json.dumps(PLATFORM_DOCUMENT))
    edit(document)
    with pytest.raises(PlatformError) as caught:
        parse_platform(yaml.safe_dump(document), namespace=NAMESPACE, source=SOURCE)
    assert message in str(caught.value)


def test_parse_platform_refuses_invalid_yaml_in_one_line() -> None:
    with pytest.raises(PlatformError, match="is not valid YAML") as caught:
        parse_platform("defaults: [\n", namespace=NAMESPACE, source=SOURCE)
    assert "\n" not in str(caught.value)


# ----------------------------------------------------------------------------- run parameters


def test_empty_parameters_take_the_platform_values() -> None:
    config = platform()
    settings = resolve_run_settings(config)
    assert settings == RunSettings(
        environment="production",
        required_approvals=2,
        approver_group="aiact-approvers",
        approval_backend=f"kubernetes://{NAMESPACE}",
        ledger_uri=LEDGER,
        approval_timeout_s=86400.0,
        demo_allowed=False,
        platform_sha256=config.sha256(),
        platform_source=config.source,
    )
    properties = settings.to_properties()
    assert properties["platform_sha256"] == config.sha256()
    assert properties["environment"] == "production"
    assert properties["demo_allowed"] is False
    assert all(isinstance(v, str | int | float | bool) for v in properties.values())


def test_parameters_equal_to_the_platform_are_accepted() -> None:
    settings = resolve_run_settings(
        platform(),
        environment="production",
        approver_group="aiact-approvers",
        required_approvals=2,
        approval_backend=f"kubernetes://{NAMESPACE}",
        ledger_uri=LEDGER,
        approval_timeout_s=86400.0,
    )
    assert settings.approval_backend == f"kubernetes://{NAMESPACE}"
    assert resolve_run_settings(platform(), approval_backend="kubernetes://").approval_backend == (
        f"kubernetes://{NAMESPACE}"
    )


def test_narrowing_is_accepted() -> None:
    settings = resolve_run_settings(platform(), required_approvals=3, approval_timeout_s=600.0)
    assert settings.required_approvals == 3
    assert settings.approval_timeout_s == 600.0


def test_a_contradicting_environment_fails_with_one_clear_line() -> None:
    with pytest.raises(PlatformError) as caught:
        resolve_run_settings(platform(), environment="staging")
    assert str(caught.value) == (
        "run parameter environment='staging' contradicts the platform configuration: this "
        f"namespace is 'production' ({SOURCE}, namespace {NAMESPACE})"
    )


@pytest.mark.parametrize("spelling", ["Production", "production ", "prod"])
def test_a_misspelled_environment_parameter_is_refused(spelling: str) -> None:
    with pytest.raises(PlatformError, match=r"run parameter environment .* is not one of"):
        resolve_run_settings(platform(), environment=spelling)


def test_a_development_claim_in_a_production_namespace_is_refused() -> None:
    with pytest.raises(PlatformError, match="this namespace is 'production'"):
        resolve_run_settings(platform(), environment="development", demo_approver="Dana Demo")


@pytest.mark.parametrize("group", ["other-team", "system:authenticated", "aiact-approvers "])
def test_another_approver_group_is_refused(group: str) -> None:
    with pytest.raises(PlatformError) as caught:
        resolve_run_settings(platform(), approver_group=group)
    assert str(caught.value).startswith(
        f"run parameter approver_group={group!r} contradicts the platform configuration: "
        "approvers of this namespace are the group 'aiact-approvers'"
    )


def test_fewer_approvals_are_refused() -> None:
    with pytest.raises(PlatformError, match="requires at least 2 approvals"):
        resolve_run_settings(platform(), required_approvals=1)
    with pytest.raises(PlatformError, match="must not be negative"):
        resolve_run_settings(platform(), required_approvals=-1)


def test_another_ledger_is_refused() -> None:
    with pytest.raises(PlatformError) as caught:
        resolve_run_settings(platform(), ledger_uri="file:///tmp/my-ledger.jsonl")
    assert str(caught.value).startswith(
        "run parameter ledger_uri='file:///tmp/my-ledger.jsonl' contradicts the platform "
        f"configuration: deployments of this namespace are recorded in '{LEDGER}'"
    )


def test_development_without_a_platform_ledger_uses_the_parameter() -> None:
    settings = resolve_run_settings(development(), ledger_uri="file:///tmp/ledger.jsonl")
    assert settings.ledger_uri == "file:///tmp/ledger.jsonl"
    with pytest.raises(PlatformError, match="deployments of this namespace are recorded in"):
        resolve_run_settings(development(ledger_uri=LEDGER), ledger_uri="file:///tmp/l.jsonl")


@pytest.mark.parametrize(("environment", "approvals"), [("production", 2), ("staging", 1)])
def test_a_local_backend_is_refused_outside_development(environment: str, approvals: int) -> None:
    config = platform(environment=environment, required_approvals=approvals)
    with pytest.raises(PlatformError) as caught:
        resolve_run_settings(config, approval_backend="local:/tmp/approvals")
    message = str(caught.value)
    assert message.startswith("run parameter approval_backend='local:/tmp/approvals' contradicts")
    assert (
        f"a local approval backend exists only in development; this namespace is '{environment}'"
        in message
    )
    assert "\n" not in message


def test_another_kubernetes_namespace_is_refused() -> None:
    with pytest.raises(PlatformError, match="approvals of this namespace go through"):
        resolve_run_settings(platform(), approval_backend="kubernetes://someone-else")


def test_a_local_backend_is_refused_where_the_development_platform_names_one() -> None:
    config = development(approval_backend="kubernetes://")
    with pytest.raises(PlatformError, match=f"go through 'kubernetes://{NAMESPACE}'"):
        resolve_run_settings(config, approval_backend="local:/tmp/approvals")


def test_development_without_a_platform_backend_uses_the_parameter() -> None:
    settings = resolve_run_settings(development(), approval_backend="local:/tmp/approvals")
    assert settings.approval_backend == "local:/tmp/approvals"
    with pytest.raises(PlatformError, match="neither kubernetes"):
        resolve_run_settings(development(), approval_backend="s3://somewhere")


def test_a_longer_approval_timeout_is_refused() -> None:
    with pytest.raises(PlatformError) as caught:
        resolve_run_settings(platform(), approval_timeout_s=86401.0)
    assert str(caught.value).startswith(
        "run parameter approval_timeout_s=86401.0 contradicts the platform configuration: "
        "approvals in this namespace may wait at most 86400 s"
    )
    with pytest.raises(PlatformError, match="contradicts"):
        resolve_run_settings(platform(), approval_timeout_s=math.inf)
    with pytest.raises(PlatformError, match="must be greater than 0"):
        resolve_run_settings(platform(), approval_timeout_s=-5.0)
    with pytest.raises(PlatformError, match="must be a number"):
        resolve_run_settings(platform(), approval_timeout_s=math.nan)


@pytest.mark.parametrize(
    ("config", "target"),
    [
        (platform(), "this run targets 'production'"),
        (platform(environment="staging", required_approvals=1), "this run targets 'staging'"),
        (development(approval_backend="kubernetes://"), "this run's approval backend is"),
        (development(), "this run's approval backend is ''"),
    ],
)
def test_a_demo_approver_outside_local_development_is_refused(
    config: PlatformConfig, target: str
) -> None:
    with pytest.raises(PlatformError) as caught:
        resolve_run_settings(config, demo_approver="Dana Demo")
    assert str(caught.value).startswith(
        f"demo approvals exist only with the local backend in development; {target}"
    )
    assert resolve_run_settings(config).demo_allowed is False


def test_the_production_demo_message_is_exact() -> None:
    with pytest.raises(PlatformError) as caught:
        resolve_run_settings(platform(), demo_approver="Dana Demo")
    assert str(caught.value) == (
        "demo approvals exist only with the local backend in development; this run targets "
        "'production'"
    )


def test_a_demo_approver_with_the_local_backend_in_development_is_allowed() -> None:
    settings = resolve_run_settings(
        development(), approval_backend="local:/tmp/approvals", demo_approver="Dana Demo"
    )
    assert settings.demo_allowed is True
    assert settings.to_properties()["demo_allowed"] is True


# ----------------------------------------------------------------------------- policy floor


FLOOR = {
    "evaluation": {
        "min_accuracy": 0.70,
        "fairness": {"sex": {"max_equalized_odds_difference": 0.15}},
        "drift": {"require_production_reference": True},
    },
    "integration": {"max_latency_ms_p95": 500},
    "version": 1,
}


def _policy() -> dict[str, Any]:
    return {
        "version": 1,
        "evaluation": {
            "min_accuracy": 0.75,
            "min_f1": 0.7,
            "fairness": {"sex": {"max_equalized_odds_difference": 0.10}},
            "drift": {"require_production_reference": True},
        },
        "integration": {"max_latency_ms_p95": 500},
    }


def test_a_policy_meeting_or_tightening_the_floor_passes() -> None:
    assert check_floor(_policy(), FLOOR) == []
    assert check_floor(_policy(), {}) == []


def test_a_loosened_nested_fairness_limit_is_a_violation() -> None:
    policy = _policy()
    policy["evaluation"]["fairness"]["sex"]["max_equalized_odds_difference"] = 0.3
    assert check_floor(policy, FLOOR) == [
        "evaluation.fairness.sex.max_equalized_odds_difference is 0.3, looser than the "
        "platform floor 0.15"
    ]


def test_a_loosened_minimum_and_maximum_are_violations() -> None:
    policy = _policy()
    policy["evaluation"]["min_accuracy"] = 0.5
    policy["integration"]["max_latency_ms_p95"] = 501
    assert check_floor(policy, FLOOR) == [
        "evaluation.min_accuracy is 0.5, looser than the platform floor 0.7",
        "integration.max_latency_ms_p95 is 501, looser than the platform floor 500",
    ]


def test_a_missing_check_is_a_violation() -> None:
    policy = _policy()
    del policy["integration"]
    assert check_floor(policy, FLOOR) == [
        "integration is missing, but the platform floor requires a section",
    ]
    # Fairness limits are per declared attribute: a policy without `sex` is for a use case
    # without it (aiact.usecase.validate_policy refuses one that omits a declared attribute),
    # but its `default` limits must meet the floor of every attribute the floor names.
    policy = _policy()
    del policy["evaluation"]["fairness"]["sex"]
    assert check_floor(policy, FLOOR) == []
    policy["evaluation"]["fairness"]["default"] = {}
    assert check_floor(policy, FLOOR)[0].startswith("evaluation.fairness.default.")
    policy = _policy()
    del policy["evaluation"]["min_accuracy"]
    assert check_floor(policy, FLOOR) == [
        "evaluation.min_accuracy is missing, but the platform floor requires 0.7"
    ]


def test_require_and_equality_keys() -> None:
    policy = _policy()
    policy["evaluation"]["drift"]["require_production_reference"] = False
    policy["version"] = 2
    assert check_floor(policy, FLOOR) == [
        "evaluation.drift.require_production_reference is false, looser than the platform "
        "floor true",
        "version is 2, but the platform floor requires 1",
    ]
    # A false floor leaves the choice to the policy.
    assert check_floor({"require_x": True}, {"require_x": False}) == []
    assert check_floor({"require_x": "yes"}, {"require_x": False}) == [
        'require_x is "yes", not true or false (platform floor false)'
    ]


@pytest.mark.parametrize("value", [math.nan, "0.9", True, None, {"a": 1}])
def test_a_threshold_that_is_not_a_number_is_a_violation(value: Any) -> None:
    (violation,) = check_floor({"min_accuracy": value}, {"min_accuracy": 0.7})
    assert violation.startswith("min_accuracy is ")


def test_enforce_policy_floor_names_every_violation() -> None:
    config = platform(policy_floor=FLOOR)
    enforce_policy_floor(_policy(), config)
    policy = _policy()
    policy["evaluation"]["min_accuracy"] = 0.5
    policy["evaluation"]["fairness"]["sex"]["max_equalized_odds_difference"] = 0.3
    with pytest.raises(PlatformError) as caught:
        enforce_policy_floor(policy, config)
    assert str(caught.value) == (
        f"gate policy is looser than the platform policy floor ({SOURCE}, namespace "
        f"{NAMESPACE}): evaluation.min_accuracy is 0.5, looser than the platform floor 0.7; "
        "evaluation.fairness.sex.max_equalized_odds_difference is 0.3, looser than the "
        "platform floor 0.15"
    )


def test_the_suite_policy_meets_the_production_floor() -> None:
    prod = parse_platform(
        (REPO / "manifests/base/platform.yaml").read_text(), namespace=NAMESPACE, source=SOURCE
    )
    assert prod.policy_floor, "the production platform declares a policy floor"
    enforce_policy_floor(load_policy(), prod)


# ----------------------------------------------------------------------------- in a cluster


class ConfigMapEmulator(kmock.KubernetesEmulator):
    """kmock's emulator, recording each request's method and path."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.paths: list[str] = []

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        self.paths.append(f"{raw_request.method} {raw_request.path}")
        return await super().__call__(raw_request)


class ApiServer:
    """The emulator on 127.0.0.1, served from a background thread."""

    def __init__(self) -> None:
        self.emulator = ConfigMapEmulator()
        self.loop = asyncio.new_event_loop()
        self.url = ""
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(
            target=self.loop.run_until_complete, args=(self._serve(),), daemon=True
        )

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with self.emulator, kmock.Server(self.emulator) as server:
            self.url = str(server.url).rstrip("/")
            self._started.set()
            await self._stop.wait()

    def __enter__(self) -> ApiServer:
        self._thread.start()
        assert self._started.wait(10), "the emulated API server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def api_client(self) -> client.ApiClient:
        return client.ApiClient(client.Configuration(host=self.url))

    def put_config_map(self, namespace: str, name: str, data: dict[str, str]) -> None:
        """Create a ConfigMap as a cluster admin would."""
        body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data=data)
        client.CoreV1Api(self.api_client()).create_namespaced_config_map(namespace, body)


@pytest.fixture
def api() -> Iterator[ApiServer]:
    with ApiServer() as server:
        yield server


def service_account(tmp_path: Path, namespace: str | None) -> Path:
    """A mounted service account directory, as the kubelet writes it."""
    directory = tmp_path / "serviceaccount"
    directory.mkdir()
    (directory / "token").write_text("a-token")
    if namespace is not None:
        (directory / "namespace").write_text(namespace)
    return directory


@pytest.fixture
def local_platform_file(tmp_path: Path) -> Path:
    """A permissive platform file that a cluster must ignore."""
    path = tmp_path / "platform.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "defaults": {
                    "environment": "development",
                    "required_approvals": 1,
                    "approver_group": "anyone",
                    "ledger_uri": "",
                    "approval_backend": "",
                    "max_approval_timeout_s": 1e9,
                },
            }
        )
    )
    return path


def test_in_cluster_the_platform_config_map_applies_the_namespace_override(
    api: ApiServer, tmp_path: Path, local_platform_file: Path
) -> None:
    api.put_config_map(
        "aiact-system", "aiact-platform", {"platform.yaml": yaml.safe_dump(PLATFORM_DOCUMENT)}
    )
    # A copy in the pipeline namespace, which its profile owner can edit, is no authority.
    api.put_config_map(
        PROD_NAMESPACE, "aiact-platform", {"platform.yaml": local_platform_file.read_text()}
    )
    environ = {
        PLATFORM_CONFIG_ENV: str(local_platform_file),
        "AIACT_ENVIRONMENT": "development",
        "AIACT_NAMESPACE": "elsewhere",
    }
    config = load_platform(
        api_client=api.api_client(),
        service_account_dir=service_account(tmp_path, PROD_NAMESPACE),
        environ=environ,
    )
    assert config.environment == "production"
    assert config.required_approvals == 2
    assert config.approver_group == "credit-risk-approvers"
    assert config.namespace == PROD_NAMESPACE
    assert config.source == f"{SOURCE} (namespace {PROD_NAMESPACE})"
    assert config.effective_approval_backend == f"kubernetes://{PROD_NAMESPACE}"
    assert "GET /api/v1/namespaces/aiact-system/configmaps/aiact-platform" in api.emulator.paths
    assert not [p for p in api.emulator.paths if PROD_NAMESPACE in p and p.startswith("GET")]
    with pytest.raises(PlatformError, match="this namespace is 'production'"):
        resolve_run_settings(config, environment="development", demo_approver="Dana Demo")


def test_in_cluster_a_namespace_without_override_gets_the_defaults(
    api: ApiServer, tmp_path: Path
) -> None:
    api.put_config_map(
        "aiact-system", "aiact-platform", {"platform.yaml": yaml.safe_dump(PLATFORM_DOCUMENT)}
    )
    config = load_platform(
        api_client=api.api_client(),
        service_account_dir=service_account(tmp_path, NAMESPACE),
        environ={},
    )
    assert (config.environment, config.required_approvals) == ("development", 1)
    assert config.source == f"{SOURCE} (namespace {NAMESPACE})"


def test_in_cluster_a_missing_config_map_is_an_error_not_a_fallback(
    api: ApiServer, tmp_path: Path, local_platform_file: Path
) -> None:
    with pytest.raises(PlatformError) as caught:
        load_platform(
            api_client=api.api_client(),
            service_account_dir=service_account(tmp_path, NAMESPACE),
            environ={PLATFORM_CONFIG_ENV: str(local_platform_file)},
        )
    message = str(caught.value)
    assert message.startswith(f"{SOURCE} not found (pod namespace {NAMESPACE})")
    assert "never falls back to defaults" in message


def test_in_cluster_a_config_map_without_the_key_is_an_error(
    api: ApiServer, tmp_path: Path
) -> None:
    api.put_config_map("aiact-system", "aiact-platform", {"other.yaml": "x: 1"})
    with pytest.raises(PlatformError, match=re.escape("has no key 'platform.yaml'")):
        load_platform(
            api_client=api.api_client(),
            service_account_dir=service_account(tmp_path, NAMESPACE),
            environ={},
        )


def test_in_cluster_an_invalid_configuration_is_an_error(api: ApiServer, tmp_path: Path) -> None:
    document = json.loads(json.dumps(PLATFORM_DOCUMENT))
    document["namespaces"][PROD_NAMESPACE]["approver_group"] = "system:authenticated"
    api.put_config_map(
        "aiact-system", "aiact-platform", {"platform.yaml": yaml.safe_dump(document)}
    )
    with pytest.raises(PlatformError, match="approver_group 'system:authenticated'"):
        load_platform(
            api_client=api.api_client(),
            service_account_dir=service_account(tmp_path, NAMESPACE),
            environ={},
        )


def test_in_cluster_an_unreachable_api_server_is_an_error(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    unreachable = client.ApiClient(client.Configuration(host=f"http://127.0.0.1:{port}"))
    with pytest.raises(PlatformError, match="could not be read after 3 attempts"):
        load_platform(
            api_client=unreachable,
            service_account_dir=service_account(tmp_path, NAMESPACE),
            environ={},
        )


def test_in_cluster_without_a_namespace_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PlatformError, match="pod's namespace cannot be read"):
        load_platform(service_account_dir=service_account(tmp_path, None), environ={})


def test_in_cluster_without_credentials_is_an_error_not_a_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    with pytest.raises(PlatformError, match="no usable in-cluster Kubernetes credentials"):
        load_platform(service_account_dir=service_account(tmp_path, NAMESPACE), environ={})


# ----------------------------------------------------------------------------- out of a cluster


def test_outside_a_cluster_without_a_file_the_development_defaults_apply(tmp_path: Path) -> None:
    config = load_platform(
        service_account_dir=tmp_path / "none", environ={"AIACT_ENVIRONMENT": "production"}
    )
    assert config == development_defaults()
    assert config.environment == "development"
    assert config.required_approvals == 1
    assert config.approver_group == "aiact-approvers"
    assert (config.ledger_uri, config.approval_backend) == ("", "")
    assert config.max_approval_timeout_s == 7 * 24 * 3600
    assert dict(config.policy_floor) == {}
    assert (config.namespace, config.source) == ("local", DEFAULTS_SOURCE)
    assert (
        load_platform(
            service_account_dir=tmp_path / "none", environ={"AIACT_NAMESPACE": "mine"}
        ).namespace
        == "mine"
    )


def test_outside_a_cluster_the_named_file_applies(tmp_path: Path) -> None:
    path = tmp_path / "platform.yaml"
    path.write_text(yaml.safe_dump(PLATFORM_DOCUMENT))
    config = load_platform(
        service_account_dir=tmp_path / "none",
        environ={PLATFORM_CONFIG_ENV: str(path), "AIACT_NAMESPACE": PROD_NAMESPACE},
    )
    assert config.environment == "production"
    assert config.source == f"file {path} (namespace {PROD_NAMESPACE})"
    local = load_platform(
        service_account_dir=tmp_path / "none", environ={PLATFORM_CONFIG_ENV: str(path)}
    )
    assert (local.namespace, local.environment) == ("local", "development")


def test_outside_a_cluster_an_unreadable_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(PlatformError, match=f"{PLATFORM_CONFIG_ENV}={missing}: cannot read"):
        load_platform(
            service_account_dir=tmp_path / "none", environ={PLATFORM_CONFIG_ENV: str(missing)}
        )


def test_floor_differences_show_where_a_policy_is_stricter() -> None:
    """What the approver is shown next to the policy hash: every floor key the policy sets
    differently (it meets the floor, so differently means stricter)."""
    from aiact.policy import check_floor, floor_differences, load_policy

    policy = load_policy()
    floor = {
        "evaluation": {
            "min_accuracy": policy["evaluation"]["min_accuracy"],
            "min_roc_auc": policy["evaluation"]["min_roc_auc"] - 0.05,
            "fairness": {"default": {"max_equalized_odds_difference": 0.6}},
        }
    }
    assert check_floor(policy, floor) == []
    lines = floor_differences(policy, floor)
    assert (
        f"evaluation.min_roc_auc {policy['evaluation']['min_roc_auc']} (platform floor"
        in (lines[0])
    )
    assert not any(line.startswith("evaluation.min_accuracy") for line in lines)
    assert any("fairness.sex.max_equalized_odds_difference" in line for line in lines)
    assert floor_differences(policy, {}) == []
