"""An HTTP emulation of the Kubernetes API for ModelApprovals: kmock's KubernetesEmulator with the
fixes the official client needs, served on 127.0.0.1 from a background thread.

It is NOT a real API server: it enforces no CRD schema, CEL rule, RBAC or admission policy (those
are tested offline in tests/manifests/test_approval_crd.py), and patches are plain dict merges.
Added here: `watch=True` recognised, 201 on create, the URL's namespace, uid, creationTimestamp and
an increasing resourceVersion in metadata, kind/apiVersion on lists, watches that resume from a
resourceVersion and honour timeoutSeconds, 410 Gone for a compacted resourceVersion, dropping
every open watch connection on demand, and SelfSubjectReview answered from the bearer token.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp.web
import kmock
import yaml
from kmock._internal import enums, rendering

RESOURCE = "aiact.eu/v1/modelapprovals"
SELF_SUBJECT_REVIEW = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


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
                    "status": {"userInfo": {"username": user, "groups": ["aiact-approvers"]}},
                },
                status=201,
            )
        return await super().__call__(raw_request)

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        if request.resource is None or request.action not in (
            enums.action.CREATE,
            enums.action.UPDATE,
        ):
            return await super()._handle(request)
        async with self.write_lock:
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
                transport = request._raw_request and request._raw_request.transport
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

    def kubeconfig(self, path: Path, user: str, namespace: str) -> Path:
        """A kubeconfig whose bearer token the emulator maps to `user`."""
        token = f"token-{user}"
        self.emulator.tokens[token] = user
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


@contextmanager
def emulated_api_server() -> Iterator[EmulatedApiServer]:
    """Start and stop an emulated API server."""
    server = EmulatedApiServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
