"""`aiact upload` / `aiact submit`: the compiled spec to a Kubeflow Pipelines API (v2beta1)
through the official `kfp.Client` (kfp 2.13).

- upload: the spec becomes a new pipeline VERSION named by the git commit it was built from
  (`aiact.stage.source_commit`); a dirty tree is refused unless `allow_dirty`; the pipeline is
  created (looked up by name with `get_pipeline_id`) on the first upload.
- submit: a run of a pipeline version (by name, default the newest) in an experiment (created
  when missing), with run parameters.

Endpoint and credentials as KFP users set them: `KF_PIPELINES_ENDPOINT` (or `endpoint`), an
existing bearer token (`KF_PIPELINES_TOKEN` or `token`, passed as `existing_token`), else the
projected service-account token file named by `KF_PIPELINES_SA_TOKEN_PATH` (the client's own
`ServiceAccountTokenVolumeCredentials`, re-read on every request). Every failure the API or the
network reports becomes a `KfpError` (a ValueError: one line, exit 2 on the command line).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from aiact.stage import source_commit

ENDPOINT_ENV = "KF_PIPELINES_ENDPOINT"
TOKEN_ENV = "KF_PIPELINES_TOKEN"
SA_TOKEN_PATH_ENV = "KF_PIPELINES_SA_TOKEN_PATH"
DEFAULT_SPEC = Path(__file__).resolve().parent.parent / "pipelines" / "compliance_pipeline.yaml"
DEFAULT_EXPERIMENT = "aiact"
FINISHED_OK = "SUCCEEDED"


class KfpError(ValueError):
    """A KFP API or connection failure, reported as one line."""


@dataclass(frozen=True)
class Uploaded:
    pipeline_id: str
    pipeline_name: str
    version_id: str
    version_name: str
    created_pipeline: bool


@dataclass(frozen=True)
class Submitted:
    run_id: str
    run_name: str
    experiment_id: str
    pipeline_id: str
    version_id: str
    version_name: str
    state: str


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _api_message(exc: Any) -> str:
    """The server's own message from an ApiException body (KFP answers JSON with `message`)."""
    body = getattr(exc, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if body:
        try:
            decoded = json.loads(body)
        except ValueError:
            return _one_line(str(body))[:300]
        if isinstance(decoded, dict):
            return _one_line(str(decoded.get("message") or decoded.get("error") or decoded))[:300]
    return _one_line(str(getattr(exc, "reason", "") or ""))


@contextlib.contextmanager
def api_errors(host: str, doing: str) -> Iterator[None]:
    """Translate what kfp.Client raises into one-line `KfpError`s naming the endpoint."""
    import urllib3
    from kfp_server_api.exceptions import ApiException

    try:
        # The client prints its UI links on stdout; keep stdout for this command's results.
        with contextlib.redirect_stdout(sys.stderr):
            yield
    except ApiException as exc:
        status = int(getattr(exc, "status", 0) or 0)
        message = _api_message(exc)
        if status in (401, 403):
            raise KfpError(
                f"KFP at {host} refused the credentials while {doing} ({status} "
                f"{exc.reason}): {message} (set KF_PIPELINES_TOKEN/--token or "
                f"KF_PIPELINES_SA_TOKEN_PATH)"
            ) from None
        if status == 0:
            raise KfpError(f"KFP at {host} unreachable while {doing}: {message}") from None
        raise KfpError(
            f"KFP at {host} answered {status} {exc.reason} while {doing}: {message}"
        ) from None
    except urllib3.exceptions.HTTPError as exc:
        reason = getattr(exc, "reason", None) or exc
        raise KfpError(
            f"KFP endpoint {host} unreachable while {doing}: {_one_line(str(reason))}"
        ) from None
    except TimeoutError as exc:
        raise KfpError(f"KFP at {host}: {doing} timed out ({exc})") from None


def connect(endpoint: str = "", token: str = "") -> Any:
    """A `kfp.Client` for `endpoint` (else KF_PIPELINES_ENDPOINT) with `token` (else
    KF_PIPELINES_TOKEN, else the KF_PIPELINES_SA_TOKEN_PATH file). The client's health check
    (`/apis/v2beta1/healthz`) is made once, not retried for 25 s."""
    import kfp
    from kfp.client.set_volume_credentials import ServiceAccountTokenVolumeCredentials

    host = (endpoint or os.environ.get(ENDPOINT_ENV, "")).strip()
    if not host:
        raise KfpError(f"no KFP endpoint: set {ENDPOINT_ENV} or pass --endpoint URL")
    if not host.startswith(("http://", "https://")):
        raise KfpError(f"KFP endpoint {host!r} must start with http:// or https://")
    token = token or os.environ.get(TOKEN_ENV, "")
    credentials = None
    token_path = os.environ.get(SA_TOKEN_PATH_ENV, "")
    if not token and token_path:
        if not Path(token_path).is_file():
            raise KfpError(f"{SA_TOKEN_PATH_ENV}={token_path}: no such token file")
        credentials = ServiceAccountTokenVolumeCredentials(path=token_path)

    class _Client(kfp.Client):
        def get_kfp_healthz(self, sleep_duration: int = 5) -> Any:
            return self._healthz_api.healthz_service_get_healthz()

    with api_errors(host, "checking its health"), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return _Client(host=host, existing_token=token or None, credentials=credentials)


def spec_pipeline_name(spec: Path) -> str:
    """`pipelineInfo.name` of a compiled spec."""
    try:
        first = next(d for d in yaml.safe_load_all(spec.read_text()) if d)
        name = str(first["pipelineInfo"]["name"])
    except (StopIteration, KeyError, TypeError, yaml.YAMLError) as exc:
        raise KfpError(f"{spec}: not a compiled KFP pipeline spec ({exc})") from None
    return name


def version_name_for(spec: Path, allow_dirty: bool = False, now: str = "") -> str:
    """The version name: the commit of the checkout holding `spec`. A dirty tree is refused
    unless `allow_dirty` (then `<commit>-dirty-<UTC timestamp>`, never reusable)."""
    commit = source_commit(spec.resolve().parent)
    if not commit:
        raise KfpError(f"{spec} is not in a git checkout: pass --version NAME")
    if commit.endswith("-dirty"):
        if not allow_dirty:
            raise KfpError(
                f"the checkout holding {spec} has uncommitted changes (HEAD "
                f"{commit.removesuffix('-dirty')}): commit them, or pass --allow-dirty"
            )
        stamp = now or datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        return f"{commit}-{stamp}"
    return commit


def _host(client: Any) -> str:
    return str(getattr(getattr(client, "_existing_config", None), "host", "") or "KFP")


def upload(
    client: Any,
    spec: Path,
    version_name: str,
    pipeline_name: str = "",
    description: str = "",
) -> Uploaded:
    """Upload `spec` as version `version_name` of `pipeline_name` (default: the spec's own
    name), creating the pipeline when no pipeline of that name exists."""
    if not spec.is_file():
        raise KfpError(f"{spec}: no such compiled spec (run `aiact compile`)")
    name = pipeline_name or spec_pipeline_name(spec)
    host = _host(client)
    with api_errors(host, f"looking up pipeline {name!r}"):
        pipeline_id = client.get_pipeline_id(name)
    created = False
    if pipeline_id is None:
        with api_errors(host, f"creating pipeline {name!r}"):
            pipeline = client.upload_pipeline(
                str(spec), pipeline_name=name, description=description or None
            )
        pipeline_id = pipeline.pipeline_id
        created = True
    with api_errors(host, f"uploading version {version_name!r} of pipeline {name!r}"):
        version = client.upload_pipeline_version(
            str(spec),
            pipeline_version_name=version_name,
            pipeline_id=pipeline_id,
            description=description or None,
        )
    return Uploaded(
        pipeline_id=str(pipeline_id),
        pipeline_name=name,
        version_id=str(version.pipeline_version_id),
        version_name=str(version.display_name or version_name),
        created_pipeline=created,
    )


def parse_parameters(pairs: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` pairs; a value is JSON when it parses (numbers, booleans, lists, objects,
    quoted strings), else the string itself."""
    parameters: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise KfpError(f"run parameter {pair!r}: expected KEY=VALUE")
        if key in parameters:
            raise KfpError(f"run parameter {key!r} given twice")
        try:
            parameters[key] = json.loads(raw)
        except ValueError:
            parameters[key] = raw
    return parameters


def _find_version(client: Any, host: str, pipeline_id: str, name: str, version: str) -> Any:
    if version:
        query = json.dumps(
            {"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": version}]}
        )
        with api_errors(host, f"looking up version {version!r} of pipeline {name!r}"):
            found = client.list_pipeline_versions(pipeline_id, filter=query, page_size=2)
        if not found.pipeline_versions:
            raise KfpError(f"pipeline {name!r} at {host} has no version {version!r}")
        return found.pipeline_versions[0]
    with api_errors(host, f"listing versions of pipeline {name!r}"):
        found = client.list_pipeline_versions(pipeline_id, sort_by="created_at desc", page_size=1)
    if not found.pipeline_versions:
        raise KfpError(f"pipeline {name!r} at {host} has no version: run `aiact upload`")
    return found.pipeline_versions[0]


def submit(
    client: Any,
    pipeline_name: str,
    version: str = "",
    experiment: str = DEFAULT_EXPERIMENT,
    run_name: str = "",
    parameters: dict[str, Any] | None = None,
    wait: bool = False,
    timeout_s: int = 6 * 3600,
    poll_s: int = 10,
) -> Submitted:
    """Start a run of `version` (default: the newest) of `pipeline_name` in `experiment`
    (created when missing); with `wait`, return once the run has finished."""
    host = _host(client)
    with api_errors(host, f"looking up pipeline {pipeline_name!r}"):
        pipeline_id = client.get_pipeline_id(pipeline_name)
    if pipeline_id is None:
        raise KfpError(f"pipeline {pipeline_name!r} not found at {host}: run `aiact upload`")
    found = _find_version(client, host, pipeline_id, pipeline_name, version)
    version_id = str(found.pipeline_version_id)
    version_name = str(found.display_name or version_id)
    with api_errors(host, f"getting or creating experiment {experiment!r}"):
        exp = client.create_experiment(name=experiment)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H-%M-%S")
    name = run_name or f"{pipeline_name} {version_name[:12]} {stamp}"
    with api_errors(host, f"starting a run of {pipeline_name!r} version {version_name!r}"):
        run = client.run_pipeline(
            experiment_id=exp.experiment_id,
            job_name=name,
            params=parameters or {},
            pipeline_id=pipeline_id,
            version_id=version_id,
        )
    state = str(run.state or "")
    if wait:
        with api_errors(host, f"waiting for run {run.run_id}"):
            finished = client.wait_for_run_completion(
                run.run_id, timeout=timeout_s, sleep_duration=poll_s
            )
        state = str(finished.state or "")
    return Submitted(
        run_id=str(run.run_id),
        run_name=name,
        experiment_id=str(exp.experiment_id),
        pipeline_id=str(pipeline_id),
        version_id=version_id,
        version_name=version_name,
        state=state,
    )
