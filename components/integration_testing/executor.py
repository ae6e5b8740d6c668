"""Integration testing executor: deploy the staged model to the integration environment
(KServe's ModelServer in its own process on 127.0.0.1 locally; an InferenceService in the
integration namespace on a cluster), test it over the Open Inference Protocol v2, record the
report and the server's log."""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aiact import lineage
from aiact.evidence import build_report, page_type, write_report, write_summary
from aiact.featureset import load_feature_set
from aiact.lineage import PropertyValue, RunInfo
from aiact.model_manifest import read_manifest
from aiact.platform import SERVICE_ACCOUNT_DIR, PlatformError
from aiact.policy import GateResult, must_hold, section
from aiact.stage import stage_execution
from aiact.usecase import load_use_case, record_of, resolve_policy
from components.images import SERVING_IMAGE
from components.integration_testing import cluster, core

if TYPE_CHECKING:
    from aiact.model_package import ModelPackage

STAGE = "integration_testing"
LOCAL, KUBERNETES = "local-process", "kubernetes"


def _expected(model_dir: Path, features: np.ndarray) -> tuple[ModelPackage, np.ndarray]:
    """The model package and its probabilities on the holdout's feature matrix (the
    reference the served predictions are compared with). Runs while the server starts: the
    import of torch (~1.5 s) and the scoring overlap the model server's start-up."""
    from aiact.model_package import load_model_package

    package = load_model_package(model_dir)
    return package, package.predict_proba(features)


def in_cluster(service_account_dir: Path = SERVICE_ACCOUNT_DIR) -> bool:
    """Whether this process runs in a pod: the test aiact.platform.load_platform makes (the
    service account token is mounted)."""
    return (service_account_dir / "token").exists()


def _pod_namespace(service_account_dir: Path) -> str:
    path = service_account_dir / "namespace"
    try:
        namespace = path.read_text().strip()
    except OSError as exc:
        raise PlatformError(f"in a pod but {path} cannot be read ({exc.strerror or exc})") from None
    if not namespace:
        raise PlatformError(f"in a pod but {path} is empty")
    return namespace


def _serve(
    *,
    environment: str,
    model_dir: Path,
    model_uri: str,
    model_sha256: str,
    model_name: str,
    run_id: str,
    log_path: Path,
    options: core.ServingOptions,
    api_client: Any,
    service_account_dir: Path,
    started: core.ServerProcess | None = None,
) -> AbstractContextManager[core.ServerHandle]:
    if environment == LOCAL:
        return core.local_model_server(model_dir, model_name, log_path, options, started=started)
    if api_client is None:
        from aiact.platform import _in_cluster_client

        api_client = _in_cluster_client(service_account_dir)
    body = cluster.manifest(
        name=cluster.service_name(model_sha256),
        namespace=options.namespace or _pod_namespace(service_account_dir),
        image=options.image or SERVING_IMAGE,
        model_uri=model_uri,
        model_name=model_name,
        model_sha256=model_sha256,
        run_id=run_id,
        service_account=options.service_account,
    )
    return cluster.inference_service(
        api_client, body, log_path, ready_timeout_s=options.start_timeout_s
    )


def run_integration_testing(
    *,
    run: RunInfo,
    metadata_uri: str,
    model_dir: Path,
    model_uri: str,
    registration_path: Path,
    registration_uri: str,
    feature_set_dir: Path,
    feature_set_uri: str,
    policy: dict[str, Any],
    report_path: Path,
    report_uri: str,
    use_case_uri: str = "",
    server_log_path: Path | None = None,
    server_log_uri: str = "",
    serving: core.ServingOptions | None = None,
    api_client: Any = None,
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
    report_html_path: Path | None = None,
    report_html_uri: str = "",
    summary_path: Path | None = None,
    halt: bool = True,
) -> dict[str, PropertyValue]:
    """Run the stage; returns the verdict and the number of tests. `policy` {} = the
    policy.yaml of the use case (`use_case_uri`, '' = the bundled example). The execution
    completes either way, recording the report (and its HTML view and Markdown `summary_path`
    for the KFP UI) and the verdict; `halt` then raises GateFailed on a breach (in-process
    callers); in the pipeline the gate's verdict task halts the run instead.

    In a pod (`service_account_dir` holds a token) the model is served as an InferenceService
    through the Kubernetes API (`api_client`, in-cluster credentials when None); elsewhere by a
    local KServe ModelServer process. A server that does not come up or stops answering is a
    failed check (`model_server` or `server_responsive`), recorded like any other. The server's
    log (default: beside the report) is an output artefact either way."""
    options = serving or core.ServingOptions()
    environment = KUBERNETES if in_cluster(service_account_dir) else LOCAL
    log_path = server_log_path or report_path.with_name(f"{report_path.stem}.server.log")
    log_uri = server_log_uri or str(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text("")
    started = None
    with ExitStack() as cleanup:
        if environment == LOCAL:
            # The local server's process starts first and loads its libraries while the model's
            # custody is verified below; it is told which model to serve only after that.
            with suppress(core.ServingSetupError):  # raised again where the model is served
                started = core.start_server_process(log_path, options)
                cleanup.callback(started.close, options.stop_grace_s)
        stage = cleanup.enter_context(stage_execution(STAGE, run, metadata_uri))
        scratch = cleanup.enter_context(tempfile.TemporaryDirectory())
        use_case = load_use_case(use_case_uri, Path(scratch))
        stage.inputs.append(record_of(use_case))
        policy = resolve_policy(policy, use_case)
        policy_digest = stage.read_policy(policy)
        model = stage.read(lineage.MODEL, model_dir, model_uri, "model")
        registration = stage.read(
            lineage.MODEL_REGISTRATION, registration_path, registration_uri, "registration"
        )
        features = stage.read(lineage.FEATURE_SET, feature_set_dir, feature_set_uri, "feature_set")
        custody = stage.verify_upstream(
            through="registration",
            model=model.content_sha256,
            feature_set=features.content_sha256,
            registration=registration.content_sha256,
            policy=policy_digest,
        )
        stage.require_same(
            "use case",
            use_case.sha256,
            custody.digest("data_preparation", "use_case"),
            "data preparation read",
        )
        holdout = load_feature_set(feature_set_dir)["test"]
        # The model server is told the package's name from its manifest; the package itself
        # (torch) is loaded and scored in a thread while the server starts (`_expected`).
        manifest = read_manifest(model_dir)
        served = _serve(
            environment=environment,
            model_dir=model_dir,
            model_uri=model_uri,
            model_sha256=model.content_sha256,
            model_name=str(manifest["model_name"]),
            run_id=stage.run.run_id,
            log_path=log_path,
            options=options,
            api_client=api_client,
            service_account_dir=service_account_dir,
            started=started,
        )
        thresholds = section(policy, "integration")
        try:
            with ThreadPoolExecutor(1, thread_name_prefix="expected") as pool:
                scoring = pool.submit(_expected, model_dir, holdout.features)
                with served as server:
                    package, expected = scoring.result()
                    gate, evidence = core.run_integration_tests(
                        server, package, holdout.raw, expected, thresholds, options
                    )
        except core.ServingError as exc:
            gate = GateResult(core.GATE, (must_hold("model_server", False, str(exc)),))
            evidence = {}
        finally:
            log = stage.wrote(
                core.SERVER_LOG, log_path, log_uri, "server_log", {"environment": environment}
            )
        report = build_report(
            "Integration test report",
            gate,
            {
                "model_sha256": model.content_sha256,
                "registration_sha256": registration.content_sha256,
                "feature_set_sha256": features.content_sha256,
                "environment": environment,
                "server_log_sha256": log.content_sha256,
                **evidence,
            },
            policy_sha256=policy_digest,
        )
        write_report(report_path, report_html_path, report)
        stage.wrote(
            lineage.INTEGRATION_TEST_REPORT,
            report_path,
            report_uri,
            "integration_report",
            {"passed": gate.passed},
        )
        if report_html_path is not None:
            stage.wrote(
                page_type(lineage.INTEGRATION_TEST_REPORT),
                report_html_path,
                report_html_uri or str(report_html_path),
                "integration_report_html",
            )
        stage.record_verdict(gate)
        write_summary(summary_path, report)
        result: dict[str, PropertyValue] = {"verdict": gate.verdict, "tests": len(gate.checks)}
    if halt:
        gate.raise_if_failed()
    return result
