"""An HTTP emulation of the Kubernetes API for ModelApprovals: kmock's KubernetesEmulator with the
fixes the official client needs, served on 127.0.0.1 from a background thread.

It is NOT a real API server. Added here: `watch=True` recognised, 201 on create, the URL's
namespace, uid, creationTimestamp and an increasing resourceVersion in metadata, kind/apiVersion on
lists, watches that resume from a resourceVersion and honour timeoutSeconds, 410 Gone for a
compacted resourceVersion, dropping every open watch connection on demand, SelfSubjectReview
answered from the bearer token (each token maps to a user and their groups), 409 Conflict for a
patch whose metadata.resourceVersion is stale, and the status subresource's split (a status patch
changes only status, a main-resource patch never status, a create sets no status).

`ClusterRules` evaluates the rules of manifests/cluster the way an API server would: the CRD's
openAPIV3Schema (jsonschema, plus list-map key uniqueness), its CEL rules (cel-expr-python, with
the strings and optional extensions Kubernetes enables; transition rules only on update, list-map
items correlated by key) and both ValidatingAdmissionPolicies with their params and the
namespace object. The emulator runs every ModelApproval write through it (422 for the CRD, 403
for a policy), and tests/manifests/test_approval_crd.py tests the rules with it directly. What it
does not reproduce: CEL type checking against the schema and cost limits, schema pruning and
defaulting, RBAC, field selectors, and the server's exact messages.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import aiohttp.web
import jsonschema
import kmock
import yaml
from cel_expr_python import cel
from cel_expr_python.ext.ext_optional import ExtOptional
from cel_expr_python.ext.ext_strings import ExtStrings
from kmock._internal import dicts, enums, rendering

RESOURCE = "aiact.eu/v1/modelapprovals"
GROUP, PLURAL, KIND = "aiact.eu", "modelapprovals", "ModelApproval"
SELF_SUBJECT_REVIEW = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
CLUSTER_MANIFESTS = Path(__file__).resolve().parents[2] / "manifests" / "cluster"
APPROVER_GROUP = "aiact-approvers"
# The pipeline's namespace and service account in the tests that raise ModelApprovals on the
# emulator, and a platform configuration (aiact.platform) that makes that namespace production.
NAMESPACE = "team-credit"
BACKEND_URI = f"kubernetes://{NAMESPACE}"
PIPELINE = f"system:serviceaccount:{NAMESPACE}:aiact-pipeline-runner"
PRODUCTION_PLATFORM = f"""\
defaults:
  environment: production
  required_approvals: 2
  approver_group: {APPROVER_GROUP}
  ledger_uri: s3://aiact-ledger/deployments
  approval_backend: kubernetes://
  max_approval_timeout_s: 604800
"""
CEL_VARIABLES = (
    "self",
    "oldSelf",
    "object",
    "oldObject",
    "request",
    "params",
    "namespaceObject",
    "variables",
)
_ABSENT = object()  # a node missing from the old object (no transition rule runs)
HTTP_STATUS = {"Unauthorized": 401, "Forbidden": 403, "Invalid": 422, "RequestEntityTooLarge": 413}


# ----------------------------------------------------------------------------- cluster rules


@cache
def cluster_documents(directory: Path = CLUSTER_MANIFESTS) -> tuple[dict[str, Any], ...]:
    """The objects of a kustomization's resources, as written (no kustomize transformations)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    return tuple(
        doc
        for resource in kustomization["resources"]
        for doc in yaml.safe_load_all((directory / resource).read_text())
        if doc
    )


def default_groups(username: str) -> list[str]:
    """The groups an authenticator would report: service accounts get the system groups of
    their namespace, people the approver group."""
    if username.startswith("system:serviceaccount:"):
        namespace = username.split(":")[2]
        return [
            "system:serviceaccounts",
            f"system:serviceaccounts:{namespace}",
            "system:authenticated",
        ]
    return [APPROVER_GROUP, "system:authenticated"]


def json_schema(node: Any) -> Any:
    """An openAPIV3Schema as JSON Schema: the x-kubernetes-* extensions dropped."""
    if isinstance(node, dict):
        return {k: json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if isinstance(node, list):
        return [json_schema(v) for v in node]
    return node


@dataclass(frozen=True)
class Refusal:
    """Why the API server would refuse a write: HTTP status, reason and message."""

    code: int
    reason: str
    message: str

    def status(self) -> dict[str, Any]:
        """The Kubernetes Status object of the refusal."""
        return {
            "apiVersion": "v1",
            "kind": "Status",
            "status": "Failure",
            "code": self.code,
            "reason": self.reason,
            "message": self.message,
        }


class ClusterRules:
    """The CRD schema, CRD CEL rules and admission policies of manifests/cluster."""

    def __init__(self, documents: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> None:
        documents = copy.deepcopy(list(documents))  # tests change params; keep the cache intact
        (crd,) = [d for d in documents if d["kind"] == "CustomResourceDefinition"]
        (version,) = crd["spec"]["versions"]
        self.schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
        self.policies = {
            d["metadata"]["name"]: d for d in documents if d["kind"] == "ValidatingAdmissionPolicy"
        }
        self.bindings = {
            d["spec"]["policyName"]: d
            for d in documents
            if d["kind"] == "ValidatingAdmissionPolicyBinding"
        }
        # Param objects by (namespace, name): the shipped ConfigMaps, replaceable in tests.
        self.params: dict[tuple[str, str], dict[str, Any]] = {
            (d["metadata"].get("namespace", ""), d["metadata"]["name"]): d
            for d in documents
            if d["kind"] == "ConfigMap"
        }
        self.validator = jsonschema.Draft4Validator(
            json_schema(self.schema), format_checker=jsonschema.FormatChecker()
        )
        self.env = cel.NewEnv(
            variables=dict.fromkeys(CEL_VARIABLES, cel.Type.DYN),
            extensions=[ExtStrings(), ExtOptional()],
        )
        self._programs: dict[str, Any] = {}

    def evaluate(self, expression: str, data: dict[str, Any]) -> Any:
        """Evaluate a CEL expression.

        Raises:
            RuntimeError: when the expression fails to compile or evaluates to an error.
        """
        program = self._programs.get(expression)
        if program is None:
            program = self._programs[expression] = self.env.compile(expression)
        result = program.eval(data=data)
        if result.type() == cel.Type.ERROR:
            raise RuntimeError(f"{expression!r}: {result.value()}")
        return result.plain_value()

    # -- the CRD

    def schema_errors(self, obj: dict[str, Any]) -> list[str]:
        """openAPIV3Schema violations, including duplicate keys in a list-type map."""
        errors = [
            f"{'.'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
            for error in self.validator.iter_errors(obj)
        ]
        return errors + list(self._duplicate_keys(self.schema, obj, ""))

    def _duplicate_keys(self, schema: dict[str, Any], value: Any, path: str) -> Iterator[str]:
        if isinstance(value, dict):
            for name, child in schema.get("properties", {}).items():
                if name in value:
                    yield from self._duplicate_keys(child, value[name], f"{path}.{name}")
        elif isinstance(value, list) and "items" in schema:
            keys = schema.get("x-kubernetes-list-map-keys")
            seen: set[tuple[Any, ...]] = set()
            for index, item in enumerate(value):
                if keys and isinstance(item, dict):
                    key = tuple(item.get(k) for k in keys)
                    if key in seen:
                        duplicate = dict(zip(keys, key, strict=True))
                        yield f"{path}[{index}]: Duplicate value: {duplicate}"
                    seen.add(key)
                yield from self._duplicate_keys(schema["items"], item, f"{path}[{index}]")

    def _rule_sites(
        self, schema: dict[str, Any], value: Any, old: Any, path: str
    ) -> Iterator[tuple[str, dict[str, Any], Any, Any]]:
        for rule in schema.get("x-kubernetes-validations", []):
            yield path, rule, value, old
        if isinstance(value, dict):
            for name, child in schema.get("properties", {}).items():
                if name in value:
                    old_child = old.get(name, _ABSENT) if isinstance(old, dict) else _ABSENT
                    yield from self._rule_sites(child, value[name], old_child, f"{path}.{name}")
        elif isinstance(value, list) and "items" in schema:
            keys = schema.get("x-kubernetes-list-map-keys")
            old_items: dict[tuple[Any, ...], Any] = {}
            if keys and isinstance(old, list):  # list-type map items correlate by key
                old_items = {tuple(item.get(k) for k in keys): item for item in old}
            for index, item in enumerate(value):
                key = tuple(item.get(k) for k in keys) if keys and isinstance(item, dict) else ()
                old_item = old_items.get(key, _ABSENT) if keys else _ABSENT
                yield from self._rule_sites(schema["items"], item, old_item, f"{path}[{index}]")

    def crd_violations(self, new: dict[str, Any], old: dict[str, Any] | None) -> list[str]:
        """Messages of the CRD's CEL rules `new` breaks: each rule on its node (`self`);
        transition rules (`oldSelf`) only on update, where the old node exists."""
        messages = []
        for path, rule, value, old_value in self._rule_sites(
            self.schema, new, _ABSENT if old is None else old, ""
        ):
            if "oldSelf" in rule["rule"] and old_value is _ABSENT:
                continue
            data = {"self": value, "oldSelf": None if old_value is _ABSENT else old_value}
            try:
                ok = self.evaluate(rule["rule"], data) is True
            except RuntimeError as exc:
                messages.append(f"{path or '<root>'}: {rule['message']} (rule error: {exc})")
                continue
            if not ok:
                messages.append(rule["message"])
        return messages

    # -- the admission policies

    @staticmethod
    def attributes(
        *,
        operation: str,
        new: dict[str, Any],
        old: dict[str, Any] | None,
        username: str,
        groups: list[str] | tuple[str, ...],
        namespace_labels: dict[str, str] | None = None,
        subresource: str = "",
    ) -> dict[str, Any]:
        """The variables a ValidatingAdmissionPolicy sees for a write of a ModelApproval
        (`params` and `variables` are added per policy)."""
        namespace = new["metadata"].get("namespace", "")
        namespace_metadata: dict[str, Any] = {"name": namespace}
        if namespace_labels:
            namespace_metadata["labels"] = dict(namespace_labels)
        return {
            "object": new,
            "oldObject": old,
            "request": {
                "uid": str(uuid.uuid4()),
                "kind": {"group": GROUP, "version": "v1", "kind": KIND},
                "resource": {"group": GROUP, "version": "v1", "resource": PLURAL},
                "subResource": subresource,
                "requestKind": {"group": GROUP, "version": "v1", "kind": KIND},
                "name": new["metadata"]["name"],
                "namespace": namespace,
                "operation": operation,
                "userInfo": {"username": username, "uid": "1001", "groups": list(groups)},
                "dryRun": False,
            },
            "namespaceObject": {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": namespace_metadata,
            },
        }

    def _matches(self, policy: dict[str, Any], attributes: dict[str, Any]) -> bool:
        request = attributes["request"]
        resource = PLURAL + (f"/{request['subResource']}" if request["subResource"] else "")
        return any(
            GROUP in rule["apiGroups"]
            and request["operation"] in rule["operations"]
            and resource in rule["resources"]
            for rule in policy["spec"]["matchConstraints"]["resourceRules"]
        )

    def policy_verdict(self, name: str, attributes: dict[str, Any]) -> list[str] | None:
        """None when the policy does not apply; else the messages of its failed validations
        (an expression that errors fails, as under failurePolicy: Fail)."""
        policy = self.policies[name]
        spec = policy["spec"]
        if not self._matches(policy, attributes):
            return None
        data = dict(attributes, params=None, variables={})
        param_ref = self.bindings[name]["spec"].get("paramRef")
        if "paramKind" in spec:
            assert param_ref is not None, (
                f"policy {name} has a paramKind but its binding no paramRef"
            )
            data["params"] = self.params.get((param_ref["namespace"], param_ref["name"]))
            if data["params"] is None:
                assert param_ref.get("parameterNotFoundAction") == "Deny"
                return [f"failed to find param {param_ref['namespace']}/{param_ref['name']}"]
        try:
            if not all(
                self.evaluate(c["expression"], data) for c in spec.get("matchConditions", [])
            ):
                return None
        except RuntimeError as exc:
            return [f"matchCondition error: {exc}"]
        for variable in spec.get("variables", []):  # eager; each may use the earlier ones
            try:
                data["variables"] = {
                    **data["variables"],
                    variable["name"]: self.evaluate(variable["expression"], data),
                }
            except RuntimeError as exc:
                return [f"variable {variable['name']} error: {exc}"]
        failed = []
        for validation in spec["validations"]:
            try:
                if self.evaluate(validation["expression"], data) is True:
                    continue
                if "messageExpression" in validation:
                    failed.append(str(self.evaluate(validation["messageExpression"], data)))
                else:
                    failed.append(" ".join(str(validation.get("message", "")).split()))
            except RuntimeError as exc:
                failed.append(f"expression error: {exc}")
        return failed

    def review(
        self,
        *,
        operation: str,
        new: dict[str, Any],
        old: dict[str, Any] | None,
        username: str,
        groups: list[str] | tuple[str, ...],
        namespace_labels: dict[str, str] | None = None,
        subresource: str = "",
    ) -> Refusal | None:
        """What the API server would answer a write: schema and CRD rules first (422), then
        each admission policy (403 for reason Forbidden); None when admitted."""
        name = new.get("metadata", {}).get("name", "")
        invalid = self.schema_errors(new) + self.crd_violations(new, old)
        if invalid:
            message = f'{KIND}.{GROUP} "{name}" is invalid: ' + "; ".join(invalid)
            return Refusal(422, "Invalid", message)
        attributes = self.attributes(
            operation=operation,
            new=new,
            old=old,
            username=username,
            groups=groups,
            namespace_labels=namespace_labels,
            subresource=subresource,
        )
        for policy in self.policies:
            failed = self.policy_verdict(policy, attributes)
            if failed:
                binding = self.bindings[policy]["metadata"]["name"]
                reasons = [
                    v.get("reason", "Invalid") for v in self.policies[policy]["spec"]["validations"]
                ]
                reason = "Forbidden" if "Forbidden" in reasons else "Invalid"
                message = (
                    f'{KIND.lower()}s.{GROUP} "{name}" is forbidden: ValidatingAdmissionPolicy '
                    f"'{policy}' with binding '{binding}' denied request: " + "; ".join(failed)
                )
                return Refusal(HTTP_STATUS[reason], reason, message)
        return None


# ----------------------------------------------------------------------------- the emulator


class ApprovalApiEmulator(kmock.KubernetesEmulator):
    """kmock's emulator made faithful enough for the kubernetes client's watch and create."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.resources[RESOURCE] = {
            "namespaced": True,
            "kind": "ModelApproval",
            "singular": "modelapproval",
            "verbs": ["get", "list", "watch", "create", "patch"],
            "shortnames": [],
            "categories": [],
            "subresources": ["status"],
        }
        self.revision = 0
        self.compacted_below = 0  # a watch from an older resourceVersion gets 410 Gone
        self.history: list[dict[str, Any]] = []  # watch events in resourceVersion order
        self.tokens: dict[str, str] = {}  # bearer token -> username
        self.groups: dict[str, list[str]] = {}  # username -> groups (else default_groups)
        # manifests/cluster's rules, enforced on every ModelApproval write (None: none).
        self.rules: ClusterRules | None = ClusterRules(cluster_documents())
        self.namespace_labels: dict[str, dict[str, str]] = {}  # namespace -> its labels
        self.refusals: list[Refusal] = []  # writes refused, for assertions
        self.served: list[tuple[str, str]] = []  # (action, detail) for assertions
        self.changed = asyncio.Condition()
        self.drops = 0
        self.write_lock = asyncio.Lock()
        self.watch_gate = asyncio.Event()  # cleared: new watch requests wait (hold_watches)
        self.watch_gate.set()

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        # The official client sends ?watch=True; kmock 0.8 recognises only watch=true.
        if raw_request.query.get("watch") == "True":
            query = dict(raw_request.query, watch="true")
            raw_request = raw_request.clone(rel_url=raw_request.rel_url.with_query(query))
        if raw_request.method == "POST" and raw_request.path == SELF_SUBJECT_REVIEW:
            token = raw_request.headers.get("Authorization", "").removeprefix("Bearer ")
            user = self.tokens.get(token)
            if user is None:
                return aiohttp.web.json_response({"kind": "Status", "code": 401}, status=401)
            return aiohttp.web.json_response(
                {
                    "apiVersion": "authentication.k8s.io/v1",
                    "kind": "SelfSubjectReview",
                    "status": {"userInfo": {"username": user, "groups": self.groups_of(user)}},
                },
                status=201,
            )
        return await super().__call__(raw_request)

    def groups_of(self, username: str) -> list[str]:
        """The groups the authenticator reports for a user."""
        return self.groups.get(username) or default_groups(username)

    def _admit(self, request: rendering.Request) -> aiohttp.web.StreamResponse | None:
        """Apply the status subresource's split, the resourceVersion precondition and
        manifests/cluster's rules to a write; the refusal response, or None when admitted."""
        if request.resource is None or str(request.resource.plural) != PLURAL:
            return None
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        username = self.tokens.get(token, "system:anonymous")
        operation = "CREATE" if request.action == enums.action.CREATE else "UPDATE"
        old: dict[str, Any] | None = None
        if operation == "CREATE":
            request.data.pop("status", None)  # a create sets no status (status subresource)
            new = copy.deepcopy(request.data)
            new.setdefault("metadata", {})["namespace"] = request.namespace
        else:
            key = (request.resource, request.namespace, request.name or "")
            if key not in self.objects or self.objects[key].deleted:
                return None  # kmock answers 404
            stored = self.objects[key]
            old = copy.deepcopy(dict(stored.raw))
            expected = (request.data.get("metadata") or {}).get("resourceVersion")
            if expected and expected != old["metadata"].get("resourceVersion"):
                conflict = Refusal(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {PLURAL}.{GROUP} "{request.name}": the '
                    "object has been modified; please apply your changes to the latest version "
                    "and try again",
                )
                self.refusals.append(conflict)
                return aiohttp.web.json_response(conflict.status(), status=conflict.code)
            # The status subresource changes only status; the main resource never changes it.
            request.data.pop("spec" if request.subresource == "status" else "status", None)
            new = dict(dicts.patch_dict(old, request.data))
        if self.rules is None:
            return None
        refusal = self.rules.review(
            operation=operation,
            new=new,
            old=old,
            username=username,
            groups=self.groups_of(username),
            namespace_labels=self.namespace_labels.get(request.namespace or ""),
            subresource=request.subresource or "",
        )
        if refusal is None:
            return None
        self.refusals.append(refusal)
        self.served.append(("refused", refusal.reason))
        return aiohttp.web.json_response(refusal.status(), status=refusal.code)

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        if request.resource is None or request.action not in (
            enums.action.CREATE,
            enums.action.UPDATE,
        ):
            return await super()._handle(request)
        async with self.write_lock:
            refused = self._admit(request)
            if refused is not None:
                return refused
            self.revision += 1
            metadata = request.data.setdefault("metadata", {})
            metadata["resourceVersion"] = str(self.revision)
            if request.action == enums.action.CREATE:
                metadata.update(
                    namespace=request.namespace,
                    uid=str(uuid.uuid4()),
                    creationTimestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    generation=1,
                )
            response = await super()._handle(request)
            if response.status >= 300:
                return response
            name = request.name or metadata["name"]
            stored = self.objects[request.resource, request.namespace, name]
            event = "ADDED" if request.action == enums.action.CREATE else "MODIFIED"
            self.history.append({"type": event, "object": copy.deepcopy(stored.raw)})
            self.served.append((str(request.action.value), name))
            if request.action == enums.action.CREATE:
                response.set_status(201)
        async with self.changed:
            self.changed.notify_all()
        return response

    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        listed = await super()._serve_list(request)
        assert isinstance(listed, dict)
        self.served.append(("list", str(self.revision)))
        return {
            "apiVersion": "aiact.eu/v1",
            "kind": "ModelApprovalList",
            "items": listed["items"],
            "metadata": {"resourceVersion": str(self.revision)},
        }

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[rendering.Payload]:
        await self.watch_gate.wait()
        yield b""  # send the headers: the stream is open
        since = int(request.params.get("resourceVersion") or 0)
        timeout = float(request.params.get("timeoutSeconds") or 3600)
        self.served.append(("watch", str(since)))
        if since and since < self.compacted_below:
            self.served.append(("gone", str(since)))
            yield {
                "type": "ERROR",
                "object": {
                    "apiVersion": "v1",
                    "kind": "Status",
                    "status": "Failure",
                    "code": 410,
                    "reason": "Expired",
                    "message": f"too old resource version: {since} ({self.compacted_below})",
                },
            }
            return
        if not since:  # no resourceVersion: the current objects first, as ADDED
            since = self.revision
            for event in self._replay(request, 0, only_latest=True):
                yield event
        drops = self.drops
        loop = asyncio.get_running_loop()
        ends = loop.time() + timeout
        while True:
            for event in self._replay(request, since):
                since = int(event["object"]["metadata"]["resourceVersion"])
                yield event
            async with self.changed:
                try:
                    await asyncio.wait_for(self.changed.wait(), max(0.0, ends - loop.time()))
                except TimeoutError:
                    return  # the server-side end of a watch window
            if self.drops != drops:
                raw = request._raw_request
                transport = raw.transport if raw is not None else None
                if transport is not None:
                    transport.abort()  # a broken connection, not a clean end of the stream
                return

    def _replay(
        self, request: rendering.Request, since: int, only_latest: bool = False
    ) -> list[dict[str, Any]]:
        latest: dict[str, dict[str, Any]] = {}
        events = []
        for event in self.history:
            metadata = event["object"]["metadata"]
            if int(metadata["resourceVersion"]) <= since:
                continue
            if request.namespace not in (None, metadata.get("namespace")):
                continue
            latest[metadata["name"]] = {"type": "ADDED", "object": event["object"]}
            events.append(event)
        return list(latest.values()) if only_latest else events

    async def drop_watches(self) -> None:
        """Break every open watch connection."""
        self.drops += 1
        async with self.changed:
            self.changed.notify_all()

    async def hold_watches(self, held: bool) -> None:
        """Make new watch requests wait (True) or let them through (False)."""
        if held:
            self.watch_gate.clear()
        else:
            self.watch_gate.set()

    async def compact(self) -> None:
        """Forget history: a watch resuming from an older resourceVersion gets 410 Gone."""
        self.compacted_below = self.revision + 1


class EmulatedApiServer:
    """The emulator on 127.0.0.1 in a background thread, with a kubeconfig for it."""

    def __init__(self) -> None:
        self.emulator = ApprovalApiEmulator()
        self.loop = asyncio.new_event_loop()
        self.url = ""
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self.loop.run_until_complete, args=(self._serve(),))
        self._thread.daemon = True

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with self.emulator, kmock.Server(self.emulator) as server:
            self.url = str(server.url).rstrip("/")
            self._started.set()
            await self._stop.wait()
            await self.emulator.drop_watches()

    def start(self) -> None:
        self._thread.start()
        assert self._started.wait(10), "the emulated API server did not start"

    def stop(self) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def call(self, coroutine: Any) -> Any:
        """Run a coroutine on the server's loop (drop_watches, compact) and wait for it."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(10)

    def kubeconfig(
        self, path: Path, user: str, namespace: str, groups: list[str] | None = None
    ) -> Path:
        """A kubeconfig whose bearer token the emulator maps to `user` (in `groups`, default
        `default_groups`)."""
        token = f"token-{user}"
        self.emulator.tokens[token] = user
        if groups is not None:
            self.emulator.groups[user] = list(groups)
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "emulated", "cluster": {"server": self.url}}],
                    "users": [{"name": user, "user": {"token": token}}],
                    "contexts": [
                        {
                            "name": "emulated",
                            "context": {
                                "cluster": "emulated",
                                "user": user,
                                "namespace": namespace,
                            },
                        }
                    ],
                    "current-context": "emulated",
                }
            )
        )
        return path

    def objects(self, namespace: str) -> dict[str, dict[str, Any]]:
        """Stored ModelApprovals of a namespace, by name."""
        return {
            name: dict(obj.raw)
            for (resource, ns, name), obj in self.emulator.objects.items()
            if ns == namespace and not obj.deleted and str(resource.plural) == "modelapprovals"
        }


def until(
    condition: Callable[[], Any], what: str, timeout_s: float = 10, interval_s: float = 0.02
) -> Any:
    """Poll `condition` until it returns something truthy (returned); fails the test after
    `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval_s)
    return value


@contextmanager
def emulated_api_server() -> Iterator[EmulatedApiServer]:
    """Start and stop an emulated API server."""
    server = EmulatedApiServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
