"""`aiact upload` and `aiact submit` through the official kfp.Client against a local stand-in.

The server below is NOT Kubeflow Pipelines: it is a few dozen lines of `http.server` on
127.0.0.1 that speak only the part of the KFP API v2beta1 protocol the client uses here (health
check, pipeline list with a name filter, pipeline upload, version upload, version list,
experiment list/create, run create/get), record every request and refuse any without the
expected bearer token. It checks what the client SENDS (paths, query parameters, multipart
fields, JSON bodies, Authorization); it proves nothing about how a real KFP server behaves.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kfp
import pytest

from aiact import cli, kfpclient

TOKEN = "t0ken-for-tests"
SPEC = kfpclient.DEFAULT_SPEC
NAME = "aiact-compliance-pipeline"
API = "/apis/v2beta1"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def filter_name(self) -> str:
        """The name of the client's `display_name EQUALS name` filter (EQUALS sent as 1)."""
        (predicate,) = json.loads(self.query["filter"][0])["predicates"]
        assert predicate["operation"] in (1, "EQUALS"), predicate
        assert predicate["key"] == "display_name", predicate
        return str(predicate["stringValue"])


@dataclass
class FakeKfp:
    token: str = TOKEN
    requests: list[Request] = field(default_factory=list)
    pipelines: dict[str, str] = field(default_factory=dict)  # id -> name
    versions: list[dict[str, str]] = field(default_factory=list)
    experiments: dict[str, str] = field(default_factory=dict)  # id -> name
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    final_state: str = "SUCCEEDED"
    failures: list[str] = field(default_factory=list)
    url: str = ""

    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.requests]

    def answer(self, request: Request) -> tuple[int, dict[str, Any]]:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return 401, {"error": "unauthenticated", "code": 16, "message": "bad token"}
        method, path = request.method, request.path
        if (method, path) == ("GET", f"{API}/healthz"):
            return 200, {"commit_sha": "fake", "tag_name": "fake", "multi_user": False}
        if (method, path) == ("GET", f"{API}/pipelines"):
            name = request.filter_name()
            found = [
                {"pipeline_id": pid, "display_name": n}
                for pid, n in self.pipelines.items()
                if n == name
            ]
            return 200, ({"pipelines": found, "total_size": len(found)} if found else {})
        if (method, path) == ("POST", f"{API}/pipelines/upload"):
            pid = f"p-{len(self.pipelines) + 1}"
            self.pipelines[pid] = request.query["name"][0]
            return 200, {"pipeline_id": pid, "display_name": self.pipelines[pid]}
        if (method, path) == ("POST", f"{API}/pipelines/upload_version"):
            pid = request.query["pipelineid"][0]
            if pid not in self.pipelines:
                return 404, {"code": 5, "message": f"pipeline {pid} not found"}
            version = {
                "pipeline_id": pid,
                "pipeline_version_id": f"v-{len(self.versions) + 1}",
                "display_name": request.query["name"][0],
            }
            self.versions.append(version)
            return 200, version
        if method == "GET" and path.startswith(f"{API}/pipelines/") and path.endswith("/versions"):
            pid = path.split("/")[-2]
            mine = [v for v in self.versions if v["pipeline_id"] == pid]
            if "filter" in request.query:
                mine = [v for v in mine if v["display_name"] == request.filter_name()]
            else:
                assert request.query["sort_by"] == ["created_at desc"]
                mine = mine[::-1][:1]
            return 200, ({"pipeline_versions": mine} if mine else {})
        if (method, path) == ("GET", f"{API}/experiments"):
            name = request.filter_name()
            found = [
                {"experiment_id": eid, "display_name": n}
                for eid, n in self.experiments.items()
                if n == name
            ]
            return 200, ({"experiments": found} if found else {})
        if (method, path) == ("POST", f"{API}/experiments"):
            eid = f"e-{len(self.experiments) + 1}"
            self.experiments[eid] = request.json()["display_name"]
            return 200, {"experiment_id": eid, "display_name": self.experiments[eid]}
        if (method, path) == ("POST", f"{API}/runs"):
            rid = f"r-{len(self.runs) + 1}"
            self.runs[rid] = {**request.json(), "run_id": rid, "state": "PENDING"}
            return 200, self.runs[rid]
        if method == "GET" and path.startswith(f"{API}/runs/"):
            rid = path.rsplit("/", 1)[1]
            return 200, {**self.runs[rid], "state": self.final_state}
        return 404, {"code": 5, "message": f"no route {method} {path}"}


@pytest.fixture
def server() -> Iterator[FakeKfp]:
    fake = FakeKfp()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
            )
            fake.requests.append(request)
            try:
                status, payload = fake.answer(request)
            except Exception as exc:  # a failed check: answered, and seen by the test
                fake.failures.append(f"{request.method} {request.path}: {exc!r}")
                status, payload = 500, {"code": 13, "message": f"fake server check: {exc!r}"}
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert fake.failures == []


@pytest.fixture(autouse=True)
def kfp_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("KF_PIPELINES_ENDPOINT", "KF_PIPELINES_TOKEN", "KF_PIPELINES_SA_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    for name in ("KF_PIPELINES_UI_ENDPOINT", "KF_PIPELINES_IAP_OAUTH2_CLIENT_ID"):
        monkeypatch.delenv(name, raising=False)
    # no ~/.config/kfp/context.json: the client then always makes its health check
    monkeypatch.setattr(kfp.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "no-context.json"))


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.fixture
def checkout(tmp_path: Path) -> tuple[Path, str]:
    """A clean git checkout holding a copy of the compiled spec; (spec path, HEAD)."""
    repo = tmp_path / "repo"
    (repo / "pipelines").mkdir(parents=True)
    spec = repo / "pipelines" / "compliance_pipeline.yaml"
    shutil.copyfile(SPEC, spec)
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "spec")
    return spec, _git(repo, "rev-parse", "HEAD")


def _main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("aiact: ")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_upload_creates_pipeline_then_adds_versions(
    server: FakeKfp, checkout: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    spec, head = checkout
    argv = ["upload", str(spec), "--endpoint", server.url, "--token", TOKEN]
    code, out, _ = _main(argv, capsys)
    assert code == 0
    assert f"version {head} (v-1) of pipeline {NAME} (p-1) (pipeline created)" in out
    assert server.calls() == [
        ("GET", f"{API}/healthz"),
        ("GET", f"{API}/pipelines"),
        ("POST", f"{API}/pipelines/upload"),
        ("POST", f"{API}/pipelines/upload_version"),
    ]
    _, lookup, create, version = server.requests
    assert lookup.filter_name() == NAME
    assert create.query["name"] == [NAME]
    assert "aiact spec sha256 " in create.query["description"][0]
    content = spec.read_bytes()
    for upload in (create, version):
        assert upload.headers["content-type"].startswith("multipart/form-data; boundary=")
        assert b'name="uploadfile"' in upload.body
        assert content in upload.body
    assert version.query["pipelineid"] == ["p-1"]
    assert version.query["name"] == [head]
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in server.requests)

    # the next commit: the pipeline exists, only a version is uploaded (found by name)
    spec.write_text(spec.read_text() + "\n")
    _git(spec.parent.parent, "commit", "-q", "-am", "next")
    second = _git(spec.parent.parent, "rev-parse", "HEAD")
    server.requests.clear()
    code, out, _ = _main(argv, capsys)
    assert code == 0, out
    assert f"version {second} (v-2) of pipeline {NAME} (p-1)" in out
    assert "created" not in out
    assert server.calls() == [
        ("GET", f"{API}/healthz"),
        ("GET", f"{API}/pipelines"),
        ("POST", f"{API}/pipelines/upload_version"),
    ]
    assert server.requests[-1].query["pipelineid"] == ["p-1"]
    assert server.requests[-1].query["name"] == [second]


def test_upload_refuses_a_dirty_tree_unless_allowed(
    server: FakeKfp,
    checkout: tuple[Path, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec, head = checkout
    spec.write_text(spec.read_text() + "# local edit\n")
    monkeypatch.setenv("KF_PIPELINES_ENDPOINT", server.url)
    monkeypatch.setenv("KF_PIPELINES_TOKEN", TOKEN)
    code, _, err = _main(["upload", str(spec), "--pipeline-name", "mine"], capsys)
    assert code == 2
    line = _one_line_error(err)
    assert "uncommitted changes" in line and head in line and "--allow-dirty" in line
    assert server.requests == []

    code, out, _ = _main(["upload", str(spec), "--pipeline-name", "mine", "--allow-dirty"], capsys)
    assert code == 0, out
    name = server.requests[-1].query["name"][0]
    assert name.startswith(f"{head}-dirty-")
    assert server.pipelines == {"p-1": "mine"}


def test_submit_runs_a_version_with_parameters_and_waits(
    server: FakeKfp, checkout: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    spec, head = checkout
    connection = ["--endpoint", server.url, "--token", TOKEN]
    assert _main(["upload", str(spec), *connection], capsys)[0] == 0
    server.requests.clear()
    argv = [
        "submit",
        *connection,
        "--experiment",
        "ci",
        "--run-name",
        "nightly",
        "--version",
        head,
        "-p",
        "rows=5000",
        "-p",
        "noise=0.25",
        "-p",
        "strict=true",
        "-p",
        'groups=["sex", "age"]',
        "-p",
        "requested_by=dana",
        "-p",
        "code_commit=0123abc",
        "-p",
        'quoted="42"',
        "--wait",
    ]
    code, out, _ = _main(argv, capsys)
    assert code == 0, out
    assert f"run r-1 (nightly) of {NAME} version {head} in experiment ci: SUCCEEDED" in out
    assert server.calls() == [
        ("GET", f"{API}/healthz"),
        ("GET", f"{API}/pipelines"),
        ("GET", f"{API}/pipelines/p-1/versions"),
        ("GET", f"{API}/experiments"),
        ("POST", f"{API}/experiments"),
        ("POST", f"{API}/runs"),
        ("GET", f"{API}/runs/r-1"),
    ]
    _, lookup, versions, experiment_get, experiment_create, run, _ = server.requests
    assert lookup.filter_name() == NAME
    assert versions.filter_name() == head
    assert experiment_get.filter_name() == "ci"
    assert experiment_create.json()["display_name"] == "ci"
    body = run.json()
    assert body["experiment_id"] == "e-1"
    assert body["display_name"] == "nightly"
    assert body["pipeline_version_reference"] == {
        "pipeline_id": "p-1",
        "pipeline_version_id": "v-1",
    }
    assert "pipeline_spec" not in body
    assert body["runtime_config"]["parameters"] == {
        "rows": 5000,
        "noise": 0.25,
        "strict": True,
        "groups": ["sex", "age"],
        "requested_by": "dana",
        "code_commit": "0123abc",
        "quoted": "42",
    }
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in server.requests)

    # second submit: the experiment exists (not created again), newest version by default,
    # and a failed run exits 1
    server.requests.clear()
    server.final_state = "FAILED"
    code, out, _ = _main(["submit", *connection, "--experiment", "ci", "--wait"], capsys)
    assert code == 1
    assert f"version {head} in experiment ci: FAILED" in out
    assert ("POST", f"{API}/experiments") not in server.calls()
    assert server.requests[2].query["sort_by"] == ["created_at desc"]
    assert server.runs["r-2"]["runtime_config"].get("parameters") in (None, {})


def test_service_account_token_file(
    server: FakeKfp,
    checkout: tuple[Path, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec, _ = checkout
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    monkeypatch.setenv("KF_PIPELINES_ENDPOINT", server.url)
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(token_file))
    code, _, err = _main(["upload", str(spec)], capsys)
    assert code == 0, err
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in server.requests)


def test_errors_are_one_line_exit_2(
    server: FakeKfp, checkout: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    spec, _ = checkout
    # wrong token: 401 at the health check, no retries for 25 s
    code, _, err = _main(["upload", str(spec), "--endpoint", server.url, "--token", "x"], capsys)
    assert code == 2
    line = _one_line_error(err)
    assert "refused the credentials" in line and "401" in line and "bad token" in line
    assert server.calls() == [("GET", f"{API}/healthz")]

    # pipeline not found
    code, _, err = _main(
        ["submit", "--endpoint", server.url, "--token", TOKEN, "--pipeline-name", "nope"], capsys
    )
    assert code == 2
    assert "pipeline 'nope' not found" in _one_line_error(err)
    assert ("POST", f"{API}/runs") not in server.calls()

    # unreachable endpoint: a port nobody listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, _, err = _main(
        ["upload", str(spec), "--endpoint", f"http://127.0.0.1:{port}", "--token", TOKEN], capsys
    )
    assert code == 2
    assert "unreachable" in _one_line_error(err)

    # no endpoint at all; a malformed parameter
    code, _, err = _main(["submit"], capsys)
    assert code == 2
    assert "KF_PIPELINES_ENDPOINT" in _one_line_error(err)
    code, _, err = _main(["submit", "--endpoint", server.url, "-p", "novalue"], capsys)
    assert code == 2
    assert "expected KEY=VALUE" in _one_line_error(err)


def test_parse_parameters() -> None:
    assert kfpclient.parse_parameters(["a=1", "b=x=y", "c=", 'd={"k": 1}']) == {
        "a": 1,
        "b": "x=y",
        "c": "",
        "d": {"k": 1},
    }
    with pytest.raises(kfpclient.KfpError, match="given twice"):
        kfpclient.parse_parameters(["a=1", "a=2"])


def test_ci_script_steps(tmp_path: Path) -> None:
    """hack/ci-pipeline.sh with a stand-in `aiact` that records its calls: the diff is skipped
    for a missing base ref, made against the base ref's spec otherwise; no upload without
    KF_PIPELINES_ENDPOINT, one with it."""
    root = Path(__file__).resolve().parents[2]
    calls = tmp_path / "calls"
    stub = tmp_path / "aiact"
    stub.write_text(f'#!/bin/sh\necho "$*" >>{calls}\n')
    stub.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "AIACT": str(stub), "AIACT_CI_OUT": str(tmp_path / "out")}

    def ci(base: str, **extra: str) -> tuple[str, list[str]]:
        calls.write_text("")
        done = subprocess.run(
            ["bash", str(root / "hack" / "ci-pipeline.sh"), base],
            env={**env, **extra},
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout, calls.read_text().splitlines()

    out, seen = ci("refs/heads/no-such-base-ref")
    assert seen == ["compile --check", "verify-spec pipelines/compliance_pipeline.yaml"]
    assert "skipped: git ref refs/heads/no-such-base-ref does not exist" in out
    assert "skipped: KF_PIPELINES_ENDPOINT is not set" in out

    out, seen = ci("HEAD", KF_PIPELINES_ENDPOINT="http://127.0.0.1:1")
    base_spec = tmp_path / "out" / "base-compliance_pipeline.yaml"
    assert seen == [
        "compile --check",
        "verify-spec pipelines/compliance_pipeline.yaml",
        f"diff-spec {base_spec} pipelines/compliance_pipeline.yaml --format markdown",
        "upload pipelines/compliance_pipeline.yaml",
    ]
    committed = subprocess.run(
        ["git", "-C", str(root), "show", "HEAD:pipelines/compliance_pipeline.yaml"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert base_spec.read_text() == committed
