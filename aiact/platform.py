"""Platform configuration: the facts a run may narrow but never widen.

On a cluster the environment of a namespace, the number of approvals it needs, the approver
group, the deployment ledger, the approval backend, the longest approval wait and the floor of
the gate policy come from the ConfigMap `aiact-platform` in `aiact-system`, which the pipeline's
service account may read but not change (manifests/base). A Kubeflow profile owner can edit the
ConfigMaps of their own namespace, so nothing in the pipeline namespace is an authority.

The ConfigMap's key `platform.yaml` holds one YAML document::

    defaults:                     # every field, for every namespace
      environment: development    # development | staging | production (exact spelling)
      required_approvals: 1
      approver_group: aiact-approvers
      ledger_uri: s3://aiact-ledger/deployments
      approval_backend: kubernetes://   # the pod's namespace; or kubernetes://NS
      max_approval_timeout_s: 604800
    namespaces:                   # per pipeline namespace: any field above, and policy_floor
      team-credit-prod:
        environment: production
        required_approvals: 2
    policy_floor: {}              # thresholds no gate policy may loosen (see aiact.policy)

Outside a cluster the same document may come from the file named by `AIACT_PLATFORM_CONFIG`
(namespace from `AIACT_NAMESPACE`, else "local"); without it the built-in development defaults
apply. In a cluster environment variables are ignored and any failure to read the ConfigMap is
an error: a cluster never falls back to defaults.

A run's parameters then go through `resolve_run_settings`: an empty parameter takes the
platform's value, a narrower one (more approvals, a shorter approval timeout) is accepted, and a
contradicting one fails the run with a one-line error.
"""

from __future__ import annotations

import copy
import math
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from aiact.hashing import sha256_json
from aiact.policy import check_floor

ENVIRONMENTS = ("development", "staging", "production")
DEVELOPMENT, STAGING, PRODUCTION = ENVIRONMENTS

PLATFORM_NAMESPACE = "aiact-system"
PLATFORM_CONFIG_MAP = "aiact-platform"
PLATFORM_KEY = "platform.yaml"
PLATFORM_CONFIG_ENV = "AIACT_PLATFORM_CONFIG"
NAMESPACE_ENV = "AIACT_NAMESPACE"
LOCAL_NAMESPACE = "local"
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")

KUBERNETES_BACKEND = "kubernetes://"
LOCAL_BACKEND = "local:"
DEFAULT_APPROVER_GROUP = "aiact-approvers"
DEFAULT_MAX_APPROVAL_TIMEOUT_S = 7 * 24 * 3600.0
PRODUCTION_MIN_APPROVALS = 2

DEFAULTS_SOURCE = "built-in development defaults"

# The fields `defaults:` must give and a namespace entry may override.
SETTING_FIELDS = (
    "environment",
    "required_approvals",
    "approver_group",
    "ledger_uri",
    "approval_backend",
    "max_approval_timeout_s",
)
_DOCUMENT_KEYS = {"version", "defaults", "namespaces", "policy_floor"}
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_READ_ATTEMPTS = 3
_READ_TIMEOUT_S = 10.0


class PlatformError(ValueError):
    """The platform configuration is unusable, or a run parameter contradicts it."""


def parse_environment(value: str) -> str:
    """The environment named by `value`, spelled exactly as one of ENVIRONMENTS.

    Args:
        value: A candidate environment name.

    Returns:
        The value itself, once validated.

    Raises:
        PlatformError: For anything but an exact match ("Production", "production ", "prod", "").
    """
    if isinstance(value, str) and value in ENVIRONMENTS:
        return value
    raise PlatformError(
        f"environment {value!r} is not one of {', '.join(ENVIRONMENTS)} (exact spelling required)"
    )


def _freeze(value: Any) -> Any:
    """A deep copy whose mappings are read-only (MappingProxyType); lists stay lists, so a
    list-valued floor still compares equal to the policy's list."""
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return [_freeze(v) for v in value]
    return copy.deepcopy(value)


def _thaw(value: Any) -> Any:
    """Plain dicts and lists again, for JSON."""
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_thaw(v) for v in value]
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _validate_floor(floor: Mapping[str, Any], path: str = "") -> None:
    """A floor's `min_*`/`max_*` keys hold numbers and its `require_*` keys booleans."""
    for key, limit in floor.items():
        name = f"{path}{key}"
        if not isinstance(key, str):
            raise PlatformError(f"policy_floor key {name!r} must be a string")
        if isinstance(limit, Mapping):
            _validate_floor(limit, f"{name}.")
        elif key.startswith(("min_", "max_")) and not (_is_number(limit) and math.isfinite(limit)):
            raise PlatformError(f"policy_floor.{name} must be a finite number, got {limit!r}")
        elif key.startswith("require_") and not isinstance(limit, bool):
            raise PlatformError(f"policy_floor.{name} must be true or false, got {limit!r}")


@dataclass(frozen=True)
class PlatformConfig:
    """What the platform decides for one namespace; validated when constructed.

    Attributes:
        environment: One of ENVIRONMENTS.
        required_approvals: Distinct human approvals a deployment needs (>= 2 in production).
        approver_group: The group whose members may approve; never empty or a `system:` group.
        ledger_uri: The deployment ledger; "" only outside production (the run supplies one).
        approval_backend: "kubernetes://" (the pod's namespace), "kubernetes://NS", or, in
            development only, "local:/dir" or "" (the run chooses its backend).
        max_approval_timeout_s: The longest a run may wait for an approval.
        policy_floor: Gate thresholds no run's gate policy may loosen (aiact.policy.check_floor).
        namespace: The pipeline namespace this configuration applies to.
        source: Where it was read, for error messages and the lineage.
    """

    environment: str
    required_approvals: int
    approver_group: str
    ledger_uri: str
    approval_backend: str
    max_approval_timeout_s: float
    policy_floor: Mapping[str, Any]
    namespace: str
    source: str

    def __post_init__(self) -> None:
        where = f" ({_origin(self.source, str(self.namespace))})" if self.source else ""

        def fail(message: str) -> PlatformError:
            return PlatformError(f"platform configuration{where}: {message}")

        try:
            parse_environment(self.environment)
        except PlatformError as exc:
            raise fail(f"environment: {exc}") from None
        production = self.environment == PRODUCTION
        if not isinstance(self.required_approvals, int) or isinstance(
            self.required_approvals, bool
        ):
            raise fail(f"required_approvals must be an integer, got {self.required_approvals!r}")
        if self.required_approvals < 1:
            raise fail(f"required_approvals must be at least 1, got {self.required_approvals}")
        if production and self.required_approvals < PRODUCTION_MIN_APPROVALS:
            raise fail(
                f"required_approvals must be at least {PRODUCTION_MIN_APPROVALS} in production, "
                f"got {self.required_approvals}"
            )
        group = self.approver_group
        if not isinstance(group, str) or not group.strip():
            raise fail(f"approver_group must be a non-empty group name, got {group!r}")
        if group != group.strip():
            raise fail(f"approver_group {group!r} has leading or trailing whitespace")
        if group.startswith("system:"):
            raise fail(
                f"approver_group {group!r} is a Kubernetes system group (every service account "
                "or authenticated user); name a group of human approvers"
            )
        if not isinstance(self.ledger_uri, str) or self.ledger_uri != self.ledger_uri.strip():
            raise fail(
                f"ledger_uri must be a string without surrounding spaces: {self.ledger_uri!r}"
            )
        if production and not self.ledger_uri:
            raise fail("ledger_uri must name the deployment ledger in production")
        self._validate_backend(fail)
        timeout = self.max_approval_timeout_s
        if not _is_number(timeout) or not math.isfinite(timeout) or timeout <= 0:
            raise fail(f"max_approval_timeout_s must be a positive number, got {timeout!r}")
        if not isinstance(self.policy_floor, Mapping):
            raise fail(f"policy_floor must be a mapping, got {type(self.policy_floor).__name__}")
        try:
            _validate_floor(self.policy_floor)
        except PlatformError as exc:
            raise fail(str(exc)) from None
        if not isinstance(self.namespace, str) or not _DNS_LABEL.match(self.namespace):
            raise fail(f"namespace {self.namespace!r} is not a valid Kubernetes namespace name")
        object.__setattr__(self, "max_approval_timeout_s", float(timeout))
        object.__setattr__(self, "policy_floor", _freeze(self.policy_floor))

    def _validate_backend(self, fail: Callable[[str], PlatformError]) -> None:
        backend = self.approval_backend
        if not isinstance(backend, str):
            raise fail(f"approval_backend must be a string, got {backend!r}")
        if backend.startswith(KUBERNETES_BACKEND):
            namespace = backend.removeprefix(KUBERNETES_BACKEND)
            if namespace and not _DNS_LABEL.match(namespace):
                raise fail(
                    f"approval_backend {backend!r}: {namespace!r} is not a valid namespace name"
                )
            return
        if backend == "" or backend.startswith(LOCAL_BACKEND):
            if self.environment != DEVELOPMENT:
                raise fail(
                    f"approval_backend {backend!r}: {self.environment} needs a kubernetes:// "
                    "backend (local approvals exist only in development)"
                )
            if backend and not backend.removeprefix(LOCAL_BACKEND):
                raise fail(f"approval_backend {backend!r} names no directory")
            return
        raise fail(
            f"approval_backend {backend!r} is neither kubernetes://[NAMESPACE] nor local:DIR"
        )

    @property
    def effective_approval_backend(self) -> str:
        """The approval backend with "kubernetes://" resolved to this namespace."""
        if self.approval_backend == KUBERNETES_BACKEND:
            return f"{KUBERNETES_BACKEND}{self.namespace}"
        return self.approval_backend

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (every field, the floor as plain dicts)."""
        return {f.name: _thaw(getattr(self, f.name)) for f in fields(self)}

    def sha256(self) -> str:
        """Hash of the canonical JSON of `to_dict()`: the identity recorded in ML Metadata."""
        return sha256_json(self.to_dict())


def development_defaults(namespace: str = LOCAL_NAMESPACE) -> PlatformConfig:
    """The built-in configuration outside a cluster when no platform file is named.

    Args:
        namespace: The namespace to record.

    Returns:
        development, one approval, group aiact-approvers, no ledger and no approval backend
        (the run supplies them), a 7-day approval limit and no policy floor.
    """
    return PlatformConfig(
        environment=DEVELOPMENT,
        required_approvals=1,
        approver_group=DEFAULT_APPROVER_GROUP,
        ledger_uri="",
        approval_backend="",
        max_approval_timeout_s=DEFAULT_MAX_APPROVAL_TIMEOUT_S,
        policy_floor={},
        namespace=namespace,
        source=DEFAULTS_SOURCE,
    )


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merged key by key, anything else replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _settings(entry: Any, where: str, *, complete: bool) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        raise PlatformError(f"{where} must be a mapping, got {type(entry).__name__}")
    allowed = set(SETTING_FIELDS) if complete else {*SETTING_FIELDS, "policy_floor"}
    unknown = sorted(str(k) for k in set(entry) - allowed)
    if unknown:
        raise PlatformError(
            f"{where}: unknown field(s) {', '.join(unknown)} "
            f"(allowed: {', '.join(sorted(allowed))})"
        )
    if complete:
        missing = [name for name in SETTING_FIELDS if name not in entry]
        if missing:
            raise PlatformError(f"{where}: missing field(s) {', '.join(missing)}")
    return dict(entry)


def parse_platform(text: str, *, namespace: str, source: str) -> PlatformConfig:
    """The configuration of `namespace` from a `platform.yaml` document.

    Every namespace entry is validated, not only the one asked for, so a broken entry is found
    when the document is first read.

    Args:
        text: The YAML document (`defaults`, optional `namespaces` and `policy_floor`).
        namespace: The pipeline namespace whose configuration is wanted.
        source: Where the text came from (recorded, and named in errors).

    Returns:
        The defaults with the namespace's overrides applied, validated.

    Raises:
        PlatformError: On malformed YAML, unknown or missing fields, or an invalid result.
    """
    import yaml  # only where a configuration is read: most stage processes read none

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())
        raise PlatformError(
            f"platform configuration ({source}) is not valid YAML: {problem}"
        ) from None
    if not isinstance(document, Mapping):
        raise PlatformError(f"platform configuration ({source}) must be a YAML mapping")
    unknown = sorted(str(k) for k in set(document) - _DOCUMENT_KEYS)
    if unknown:
        raise PlatformError(
            f"platform configuration ({source}): unknown key(s) {', '.join(unknown)} "
            f"(allowed: {', '.join(sorted(_DOCUMENT_KEYS))})"
        )
    if document.get("version", 1) != 1:
        raise PlatformError(
            f"platform configuration ({source}): version {document['version']!r} is not 1"
        )
    if "defaults" not in document:
        raise PlatformError(f"platform configuration ({source}) has no 'defaults' section")
    defaults = _settings(
        document["defaults"], f"platform configuration ({source}) defaults", complete=True
    )
    floor = document.get("policy_floor") or {}
    if not isinstance(floor, Mapping):
        raise PlatformError(f"platform configuration ({source}): policy_floor must be a mapping")
    namespaces = document.get("namespaces") or {}
    if not isinstance(namespaces, Mapping):
        raise PlatformError(f"platform configuration ({source}): namespaces must be a mapping")

    def build(name: str, overrides: Mapping[str, Any], where: str) -> PlatformConfig:
        values = {**defaults, **{k: v for k, v in overrides.items() if k != "policy_floor"}}
        namespace_floor = overrides.get("policy_floor") or {}
        if not isinstance(namespace_floor, Mapping):
            raise PlatformError(f"{where}: policy_floor must be a mapping")
        return PlatformConfig(
            **values,
            policy_floor=_merge(floor, namespace_floor),
            namespace=name,
            source=f"{source} (namespace {name})",
        )

    configs: dict[str, PlatformConfig] = {}
    for name, entry in namespaces.items():
        where = f"platform configuration ({source}) namespaces.{name}"
        if not isinstance(name, str) or not _DNS_LABEL.match(name):
            raise PlatformError(f"{where}: {name!r} is not a valid namespace name")
        configs[name] = build(name, _settings(entry, where, complete=False), where)
    if namespace in configs:
        return configs[namespace]
    return build(namespace, {}, f"platform configuration ({source})")


def _read_config_map(api_client: Any, namespace: str) -> str:
    """The `platform.yaml` text of ConfigMap aiact-system/aiact-platform, through the API."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    where = f"ConfigMap {PLATFORM_NAMESPACE}/{PLATFORM_CONFIG_MAP}"
    api = client.CoreV1Api(api_client)
    for attempt in range(1, _READ_ATTEMPTS + 1):
        try:
            config_map = api.read_namespaced_config_map(
                PLATFORM_CONFIG_MAP, PLATFORM_NAMESPACE, _request_timeout=_READ_TIMEOUT_S
            )
            break
        except ApiException as exc:
            if exc.status == 404:
                raise PlatformError(
                    f"{where} not found (pod namespace {namespace}): install the suite's "
                    "platform configuration (manifests/overlays/*); a cluster never falls back "
                    "to defaults"
                ) from None
            if exc.status in (401, 403):
                raise PlatformError(
                    f"{where} cannot be read by this pod's service account (HTTP {exc.status}): "
                    "the Role aiact-platform-reader and its binding (manifests/base) are missing"
                ) from None
            failure = f"HTTP {exc.status} {exc.reason}"
        except Exception as exc:  # urllib3 connection and timeout errors, TLS errors
            failure = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        if attempt == _READ_ATTEMPTS:
            raise PlatformError(
                f"{where} could not be read after {_READ_ATTEMPTS} attempts ({failure})"
            )
        time.sleep(0.5 * attempt)
    data = config_map.data or {}
    text = data.get(PLATFORM_KEY)
    if not text:
        raise PlatformError(f"{where} has no key {PLATFORM_KEY!r}")
    return str(text)


def _in_cluster_client(service_account_dir: Path) -> Any:
    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        config.incluster_config.InClusterConfigLoader(
            token_filename=str(service_account_dir / "token"),
            cert_filename=str(service_account_dir / "ca.crt"),
        ).load_and_set(configuration)
    except config.ConfigException as exc:
        raise PlatformError(
            f"in a pod but no usable in-cluster Kubernetes credentials ({exc})"
        ) from None
    return client.ApiClient(configuration)


def load_platform(
    *,
    api_client: Any = None,
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
    environ: Mapping[str, str] = os.environ,
) -> PlatformConfig:
    """The platform configuration of the namespace this process runs for.

    In a cluster (the service account token `service_account_dir/token` exists) it is read from
    ConfigMap aiact-system/aiact-platform through the Kubernetes API, for the pod's namespace
    (`service_account_dir/namespace`); environment variables are ignored there. Outside a
    cluster it is read from the file named by AIACT_PLATFORM_CONFIG (namespace AIACT_NAMESPACE,
    else "local"), else the built-in development defaults apply.

    Args:
        api_client: A `kubernetes.client.ApiClient`; in-cluster configuration when None.
        service_account_dir: Where the pod's service account is mounted.
        environ: Environment variables (consulted only outside a cluster).

    Returns:
        The validated configuration.

    Raises:
        PlatformError: When the configuration cannot be read or is invalid; in a cluster every
            failure is an error, never a fallback to defaults.
    """
    if (service_account_dir / "token").exists():
        namespace_file = service_account_dir / "namespace"
        try:
            namespace = namespace_file.read_text().strip()
        except OSError as exc:
            raise PlatformError(
                f"in a pod but the pod's namespace cannot be read from {namespace_file} "
                f"({exc.strerror or exc})"
            ) from None
        if not namespace:
            raise PlatformError(f"in a pod but {namespace_file} is empty")
        if api_client is None:
            api_client = _in_cluster_client(service_account_dir)
        text = _read_config_map(api_client, namespace)
        return parse_platform(
            text,
            namespace=namespace,
            source=f"ConfigMap {PLATFORM_NAMESPACE}/{PLATFORM_CONFIG_MAP}",
        )
    namespace = environ.get(NAMESPACE_ENV, "") or LOCAL_NAMESPACE
    path = environ.get(PLATFORM_CONFIG_ENV, "")
    if not path:
        return development_defaults(namespace)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise PlatformError(
            f"{PLATFORM_CONFIG_ENV}={path}: cannot read the platform configuration "
            f"({exc.strerror or exc})"
        ) from None
    return parse_platform(text, namespace=namespace, source=f"file {path}")


@dataclass(frozen=True)
class RunSettings:
    """A run's effective settings: the platform's, narrowed by the run's parameters.

    Attributes:
        environment: The platform's environment.
        required_approvals: At least the platform's.
        approver_group: The platform's.
        approval_backend: The platform's ("kubernetes://" resolved to the namespace), or the
            run's choice where the platform names none (development).
        ledger_uri: The platform's, or the run's where the platform names none.
        approval_timeout_s: At most the platform's maximum.
        demo_allowed: Whether a demo approval may be recorded (local backend in development).
        platform_sha256: PlatformConfig.sha256() of the configuration applied.
        platform_source: Where that configuration was read.
    """

    environment: str
    required_approvals: int
    approver_group: str
    approval_backend: str
    ledger_uri: str
    approval_timeout_s: float
    demo_allowed: bool
    platform_sha256: str
    platform_source: str

    def to_properties(self) -> dict[str, str | int | float | bool]:
        """ML Metadata properties of the run's settings, one per field."""
        return {
            "environment": self.environment,
            "required_approvals": self.required_approvals,
            "approver_group": self.approver_group,
            "approval_backend": self.approval_backend,
            "ledger_uri": self.ledger_uri,
            "approval_timeout_s": self.approval_timeout_s,
            "demo_allowed": self.demo_allowed,
            "platform_sha256": self.platform_sha256,
            "platform_source": self.platform_source,
        }


def _origin(source: str, namespace: str) -> str:
    """`source` for a parenthesis: "X (namespace N)" becomes "X, namespace N"."""
    suffix = f" (namespace {namespace})"
    if source.endswith(suffix):
        return f"{source.removesuffix(suffix)}, namespace {namespace}"
    return source


def _contradicts(name: str, value: Any, platform: PlatformConfig, detail: str) -> PlatformError:
    return PlatformError(
        f"run parameter {name}={value!r} contradicts the platform configuration: {detail} "
        f"({_origin(platform.source, platform.namespace)})"
    )


def resolve_run_settings(
    platform: PlatformConfig,
    *,
    environment: str = "",
    approver_group: str = "",
    required_approvals: int = 0,
    approval_backend: str = "",
    ledger_uri: str = "",
    approval_timeout_s: float = 0.0,
    demo_approver: str = "",
) -> RunSettings:
    """The run's settings: each parameter may narrow the platform's value, never widen it.

    An empty or zero parameter takes the platform's value.

    Args:
        platform: The platform configuration (load_platform).
        environment: Must equal the platform's environment (after exact-spelling validation).
        approver_group: Must equal the platform's approver group.
        required_approvals: May raise the platform's number, never lower it.
        approval_backend: Must equal the platform's when it names one ("kubernetes://" stands
            for the namespace); a `local:` backend only in development.
        ledger_uri: Must equal the platform's when it names one.
        approval_timeout_s: Positive, at most the platform's maximum.
        demo_approver: Non-empty only in development with a `local:` approval backend.

    Returns:
        The effective settings.

    Raises:
        PlatformError: One line naming the first contradicting parameter.
    """
    if environment:
        try:
            parse_environment(environment)
        except PlatformError as exc:
            raise PlatformError(f"run parameter {exc}") from None
        if environment != platform.environment:
            raise _contradicts(
                "environment",
                environment,
                platform,
                f"this namespace is {platform.environment!r}",
            )
    env = platform.environment

    if approver_group and approver_group != platform.approver_group:
        raise _contradicts(
            "approver_group",
            approver_group,
            platform,
            f"approvers of this namespace are the group {platform.approver_group!r}",
        )

    if isinstance(required_approvals, bool) or not isinstance(required_approvals, int):
        raise PlatformError(
            f"run parameter required_approvals={required_approvals!r} must be an integer"
        )
    if required_approvals < 0:
        raise PlatformError(
            f"run parameter required_approvals={required_approvals} must not be negative"
        )
    if required_approvals and required_approvals < platform.required_approvals:
        raise _contradicts(
            "required_approvals",
            required_approvals,
            platform,
            f"this namespace requires at least {platform.required_approvals} approvals",
        )
    approvals = max(required_approvals, platform.required_approvals)

    backend = _resolve_backend(platform, approval_backend)

    if ledger_uri and platform.ledger_uri and ledger_uri != platform.ledger_uri:
        raise _contradicts(
            "ledger_uri",
            ledger_uri,
            platform,
            f"deployments of this namespace are recorded in {platform.ledger_uri!r}",
        )
    ledger = platform.ledger_uri or ledger_uri
    if env == PRODUCTION and not ledger:
        raise PlatformError(
            f"no deployment ledger for a production run: the platform configuration names none "
            f"({_origin(platform.source, platform.namespace)})"
        )

    if not _is_number(approval_timeout_s) or math.isnan(approval_timeout_s):
        raise PlatformError(
            f"run parameter approval_timeout_s={approval_timeout_s!r} must be a number"
        )
    if approval_timeout_s < 0:
        raise PlatformError(
            f"run parameter approval_timeout_s={approval_timeout_s:g} must be greater than 0"
        )
    if approval_timeout_s > platform.max_approval_timeout_s:
        raise _contradicts(
            "approval_timeout_s",
            approval_timeout_s,
            platform,
            f"approvals in this namespace may wait at most {platform.max_approval_timeout_s:g} s",
        )
    timeout = float(approval_timeout_s or platform.max_approval_timeout_s)

    demo_allowed = env == DEVELOPMENT and backend.startswith(LOCAL_BACKEND)
    if demo_approver and not demo_allowed:
        target = (
            f"this run targets {env!r}"
            if env != DEVELOPMENT
            else f"this run's approval backend is {backend!r}"
        )
        raise PlatformError(
            f"demo approvals exist only with the local backend in development; {target}"
        )

    return RunSettings(
        environment=env,
        required_approvals=approvals,
        approver_group=platform.approver_group,
        approval_backend=backend,
        ledger_uri=ledger,
        approval_timeout_s=timeout,
        demo_allowed=demo_allowed,
        platform_sha256=platform.sha256(),
        platform_source=platform.source,
    )


def _resolve_backend(platform: PlatformConfig, requested: str) -> str:
    """The approval backend: the platform's, or the run's where the platform names none."""
    if requested.startswith(LOCAL_BACKEND) and platform.environment != DEVELOPMENT:
        raise _contradicts(
            "approval_backend",
            requested,
            platform,
            f"a local approval backend exists only in development; this namespace is "
            f"{platform.environment!r}",
        )
    required = platform.effective_approval_backend
    if not required:
        if requested and not requested.startswith((LOCAL_BACKEND, KUBERNETES_BACKEND)):
            raise PlatformError(
                f"run parameter approval_backend={requested!r} is neither "
                "kubernetes://[NAMESPACE] nor local:DIR"
            )
        return requested
    if not requested:
        return required
    normalised = requested
    if requested.startswith(KUBERNETES_BACKEND):
        named = requested.removeprefix(KUBERNETES_BACKEND).strip("/")
        normalised = f"{KUBERNETES_BACKEND}{named or platform.namespace}"
    if normalised != required:
        raise _contradicts(
            "approval_backend",
            requested,
            platform,
            f"approvals of this namespace go through {required!r}",
        )
    return required


def enforce_policy_floor(policy: Mapping[str, Any], platform: PlatformConfig) -> None:
    """Refuse a gate policy looser than the platform's floor.

    Args:
        policy: The run's gate policy.
        platform: The platform configuration whose `policy_floor` applies.

    Raises:
        PlatformError: Naming every violation, joined by "; ".
    """
    violations = check_floor(policy, platform.policy_floor)
    if violations:
        raise PlatformError(
            "gate policy is looser than the platform policy floor "
            f"({_origin(platform.source, platform.namespace)}): " + "; ".join(violations)
        )
