"""`aiact`: the suite's command line for data scientists, CI, approvers and auditors."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path

from aiact.approval import APPROVED, REJECTED, ApprovalError, Decision, backend_from_uri
from aiact.bundle import write_bundle
from aiact.custody import CHAIN, CustodyError
from aiact.lineage import LineageError, LineageStore, properties_of

DEFAULT_WORKDIR = Path(".aiact")
APPROVALS_HELP = "local:/dir (run-local) or kubernetes://NAMESPACE (ModelApproval resources)"
PLUGIN_COMMANDS = ("approve", "reject", "approvals")


def _run_local(args: argparse.Namespace) -> int:
    from pipelines.local_run import LocalRunConfig, run_local

    config = LocalRunConfig(
        workdir=args.workdir,
        demo_approver=args.demo_approver or "",
        approval_timeout_s=args.approval_timeout,
        rows=args.rows,
        data_seed=args.data_seed,
        label_bias=args.label_bias,
        drift=args.drift,
        corruption=args.corruption,
        source_uri=args.source or "",
        use_case_uri=args.use_case or "",
        policy_path=args.policy,
        data_card_uri=args.data_card or "",
        model_name=args.model_name or "",
        log_to_file=not args.verbose,
        progress=True,
        overrides=_run_overrides(args),
    )
    result = run_local(config)
    store = LineageStore.connect(config.metadata_uri)
    workdir = config.workdir.resolve()
    print("\n== aiact run-local ==")
    print(f"run id:            {result.run_id}")
    print(f"outcome:           {'SUCCEEDED' if result.succeeded else 'HALTED'}")
    print(f"pipeline spec:     sha256:{result.pipeline_spec_sha256}")
    print(f"MLMD store:        {config.metadata_uri}")
    print(f"stage outputs:     {workdir / 'pipeline_root'}")
    print(f"approvals:         {config.approvals_uri}")
    print(f"deployment ledger: {config.ledger_uri}")
    bundle = workdir / "evidence" / result.run_id
    manifest = write_bundle(store, result.run_id, bundle)
    print(f"evidence bundle:   {bundle / 'index.html'} (AI Act articles -> evidence)")
    if result.log_path is not None:
        print(f"executor logs:     {result.log_path}")
    custody = manifest["custody"]
    if custody["verified"]:
        verdict = f"VERIFIED through {custody['through']} (sha256:{custody['custody_sha256']})"
    else:
        verdict = f"not verified: {custody['reason']}"
    print(f"chain of custody:  {verdict}")
    if args.verbose:
        # The per-stage lines were interleaved with the logs: repeat them, and the lineage.
        print("\nstages recorded in MLMD:")
        for execution in store.executions_of_run(result.run_id):
            note = execution.properties.get("error", "")
            print(f"  {execution.stage:<20} {execution.state:<9} {str(note)[:160]}")
        if result.succeeded:
            print("\nlineage of the deployed model (aiact trace):")
            _print_trace(store, result.run_id)
    elif result.succeeded:
        where = f"--metadata-uri {config.metadata_uri}"
        print(f"lineage:           aiact trace --run {result.run_id} --verify {where}")
    return 0 if result.succeeded else 1


def _run_overrides(args: argparse.Namespace) -> dict[str, object]:
    """Pipeline arguments `run-local` takes as options (--hyperparameters JSON, --seed)."""
    overrides: dict[str, object] = {}
    if args.hyperparameters:
        try:
            hyperparameters = json.loads(args.hyperparameters)
        except ValueError as exc:
            raise ValueError(f"--hyperparameters is not JSON: {exc}") from None
        if not isinstance(hyperparameters, dict):
            raise ValueError("--hyperparameters must be a JSON object, e.g. '{\"max_epochs\": 12}'")
        overrides["hyperparameters"] = hyperparameters
    if args.seed is not None:
        overrides["seed"] = args.seed
    return overrides


def _resume(args: argparse.Namespace) -> int:
    """`aiact resume RUN`: re-run a failed or killed run from its first incomplete stage."""
    from pipelines.local_run import LocalRunConfig, resume_local

    config = LocalRunConfig(workdir=args.workdir, log_to_file=not args.verbose, progress=True)
    resumed = resume_local(config, args.run)
    plan, result = resumed.plan, resumed.result
    store = LineageStore.connect(config.metadata_uri)
    print("\n== aiact resume ==")
    stopped = f"{plan.state} at {plan.first_incomplete}; now abandoned"
    print(f"resumed run:       {plan.run_id} ({stopped})")
    for name in resumed.withdrawn:
        print(f"withdrawn request: {name} (its run was abandoned)")
    print(f"run id:            {result.run_id}")
    print(f"outcome:           {'SUCCEEDED' if result.succeeded else 'HALTED'}")
    for execution in store.executions_of_run(result.run_id):
        origin = execution.properties.get("reused_execution_id")
        if origin:
            source = execution.properties.get("reused_from_run", "")
            print(f"  reused:          {execution.stage} = execution {origin} of run {source}")
    bundle = config.workdir.resolve() / "evidence" / result.run_id
    manifest = write_bundle(store, result.run_id, bundle)
    print(f"evidence bundle:   {bundle / 'index.html'}")
    if result.log_path is not None:
        print(f"executor logs:     {result.log_path}")
    custody = manifest["custody"]
    verdict = (
        f"VERIFIED through {custody['through']} (sha256:{custody['custody_sha256']})"
        if custody["verified"]
        else f"not verified: {custody['reason']}"
    )
    print(f"chain of custody:  {verdict}")
    return 0 if result.succeeded else 1


def _print_trace(store: LineageStore, run_id: str = "") -> int:
    """Print the lineage of the latest deployment (of `run_id`, when given)."""
    from aiact.trace import latest_deployment, render, run_header, trace_artifact

    deployment = latest_deployment(store, run_id).id
    print("\n".join(run_header(store, deployment) + render(trace_artifact(store, deployment))))
    return deployment


def _trace(args: argparse.Namespace) -> int:
    store = LineageStore.connect(args.metadata_uri)
    deployment = _print_trace(store, args.run or "")
    if not args.verify:
        return 0
    from aiact.custody import render, verify_model

    [artifact] = store.store.get_artifacts_by_id([deployment])
    model = str(properties_of(artifact).get("model_sha256", ""))
    run_id = str(properties_of(artifact).get("pipeline_run_id", "")) or None
    print("\n".join(render(verify_model(store, model, run_id=run_id, through="deployment"))))
    return 0


def _verify_model(args: argparse.Namespace) -> int:
    from aiact.custody import default_through, find_models, render, verify_model

    store = LineageStore.connect(args.metadata_uri)
    models = find_models(store, args.model)
    if len(models) > 1 and not args.all:
        models = models[:1]
    for model in models:
        through = args.through or default_through(store, model)
        custody = verify_model(store, model.name, run_id=args.run or None, through=through)
        print("\n".join(render(custody)))
    print(f"VERIFIED: {len(models)} model(s)")
    return 0


def _evidence_bundle(args: argparse.Namespace) -> int:
    from aiact.bundle import INDEX, SUMS, BundleError, verify_bundle

    if args.verify is not None:
        if args.run or args.out:
            raise ValueError("evidence-bundle --verify DIR takes no --run or --out")
        try:
            checked = verify_bundle(args.verify)
        except BundleError as exc:
            print(f"aiact: evidence bundle {args.verify} altered: {exc}", file=sys.stderr)
            return 1
        print(
            f"VERIFIED: {checked['files']} files of the bundle of run {checked['run_id']} "
            f"match {SUMS} and the MLMD records in its manifest"
        )
        return 0
    if not args.run or args.out is None:
        raise ValueError("evidence-bundle needs --run ID and --out DIR (or --verify DIR)")
    manifest = write_bundle(LineageStore.connect(args.metadata_uri), args.run, args.out)
    for article, content in manifest["articles"].items():
        missing = ", ".join(content["missing"]) or "-"
        print(f"{article:<20} {len(content['evidence']):>2} records  missing: {missing}")
    custody = manifest["custody"]
    verified = f"VERIFIED through {custody['through']}" if custody["verified"] else "NOT VERIFIED"
    print(f"run outcome: {manifest['outcome']}; chain of custody: {verified}")
    print(f"wrote {args.out / INDEX} ({len(manifest['files'])} evidence files, {SUMS})")
    return 0


def _runs(args: argparse.Namespace) -> int:
    store = LineageStore.connect(args.metadata_uri)
    for context in store.runs():
        print(json.dumps({"run_id": context.name, **properties_of(context)}, sort_keys=True))
    return 0


def _dashboard(args: argparse.Namespace) -> int:
    from aiact.dashboard import percent, run_dashboard

    index, board = run_dashboard(args.metadata_uri, args.out, args.since or "")
    m = board.overall
    print(
        f"{m.runs} runs: validation-gate success {percent(m.validation_success_rate)}, "
        f"fairness-gate failures {m.fairness_failed}, deployed {m.deployed}, "
        f"blocked at approval {m.blocked_at_approval}"
    )
    print(f"wrote {index}")
    return 0


def _impact(args: argparse.Namespace) -> int:
    from aiact.impact import impact

    found = impact(LineageStore.connect(args.metadata_uri), args.query)
    if args.json:
        print(json.dumps(found.to_dict(), indent=1, sort_keys=True))
    else:
        print("\n".join(found.lines()))
    return 0


def _decide(args: argparse.Namespace, verdict: str) -> int:
    from aiact.approval.kubernetes import KubernetesApprovalBackend
    from components.approval.core import utc_now

    backend = backend_from_uri(args.approvals)
    approver = args.approver or getpass.getuser()
    if isinstance(backend, KubernetesApprovalBackend):
        # The cluster's admission policy records a decision only under the requesting user.
        approver = backend.current_user()
        if args.approver and args.approver != approver:
            raise ApprovalError(
                f"--approver {args.approver!r} is not your Kubernetes identity {approver!r}: "
                "the cluster accepts a decision only in the name of the user who sends it"
            )
    decision = Decision(
        decision=verdict,
        approver=approver,
        reason=args.reason,
        decided_at=utc_now(),
        acknowledged=tuple(args.acknowledge or ()),
    )
    backend.decide(args.name, decision)
    print(f"{args.name}: {verdict} by {decision.approver}")
    return 0


def _link(uri: str) -> str:
    """A clickable form of an artefact URI (local paths become file:// URLs)."""
    return Path(uri).as_uri() if uri.startswith("/") else uri


def _review(args: argparse.Namespace) -> int:
    """`aiact approvals --review NAME --out DIR`: fetch the request's review page, verified."""
    from aiact.review_page import fetch_verified

    if args.out is None:
        raise ValueError("approvals --review NAME needs --out DIR")
    request = backend_from_uri(args.approvals).request(args.review)
    path = fetch_verified(
        request.review_page_uri, request.review_page_sha256, args.out, request.name
    )
    print(
        f"{request.name}: review page verified (sha256 {request.review_page_sha256}), "
        f"from {request.review_page_uri}\n    open: {path.resolve().as_uri()}"
    )
    return 0


def _pending(args: argparse.Namespace) -> int:
    if args.review:
        return _review(args)
    for request in backend_from_uri(args.approvals).pending():
        acknowledge = "".join(f" --acknowledge '{a}'" for a in request.acknowledgements_required)
        where = f"{request.name} --approvals {args.approvals} --reason ..."
        if acknowledge:
            print(f"{request.name}: approvers must acknowledge:{acknowledge}")
        if request.policy_sha256:
            stricter = "; ".join(request.policy_vs_floor) or "equal to the platform floor"
            print(
                f"{request.name}: gate policy sha256:{request.policy_sha256[:12]}, "
                f"stricter than the platform floor in: {stricter}"
            )
        print(
            f"{request.name}  model={request.model_name}@{request.model_sha256[:12]} "
            f"run={request.pipeline_run_id} requested-by={request.requested_by} "
            f"expires={request.expires_at}\n"
            f"    evaluation report:  {_link(request.evaluation_report_uri)} "
            f"(sha256 {request.evaluation_report_sha256[:12]})\n"
            f"    integration report: {_link(request.integration_report_uri)} "
            f"(sha256 {request.integration_report_sha256[:12]})\n"
            + (
                f"    review page:        {_link(request.review_page_uri)} "
                f"(sha256 {request.review_page_sha256[:12]}; fetch and verify: aiact approvals "
                f"--review {request.name} --approvals {args.approvals} --out DIR)\n"
                if request.review_page_sha256
                else "    review page:        none (the request names no review page)\n"
            )
            + f"    decide: aiact approve {where}  |  aiact reject {where}"
        )
    return 0


def _verify_spec(args: argparse.Namespace) -> int:
    from aiact.specverify import verify_file

    result = verify_file(args.spec, args.structure)
    print("\n".join(result.violations) if result.violations else result.summary)
    return 0 if result.ok else 1


def _compile(args: argparse.Namespace) -> int:
    from pipelines.spec import run_compile

    return run_compile(
        check=args.check, components_only=args.components, image_digests=args.image_digests
    )


def _upload(args: argparse.Namespace) -> int:
    from aiact import kfpclient
    from pipelines.spec import embedded_sha256, load_documents

    spec = args.spec or kfpclient.DEFAULT_SPEC
    if not spec.is_file():
        raise kfpclient.KfpError(f"{spec}: no such compiled spec (run `aiact compile`)")
    version = args.version or kfpclient.version_name_for(spec, allow_dirty=args.allow_dirty)
    digest = embedded_sha256(load_documents(spec))
    client = kfpclient.connect(args.endpoint, args.token)
    done = kfpclient.upload(
        client,
        spec,
        version,
        pipeline_name=args.pipeline_name,
        description=f"aiact spec sha256 {digest}; source {version}",
    )
    created = " (pipeline created)" if done.created_pipeline else ""
    print(
        f"uploaded {spec} as version {done.version_name} ({done.version_id}) of pipeline "
        f"{done.pipeline_name} ({done.pipeline_id}){created}"
    )
    return 0


def _submit(args: argparse.Namespace) -> int:
    from aiact import kfpclient

    parameters = kfpclient.parse_parameters(args.param)
    name = args.pipeline_name or kfpclient.spec_pipeline_name(kfpclient.DEFAULT_SPEC)
    client = kfpclient.connect(args.endpoint, args.token)
    run = kfpclient.submit(
        client,
        name,
        version=args.version,
        experiment=args.experiment,
        run_name=args.run_name,
        parameters=parameters,
        wait=args.wait,
        timeout_s=args.timeout,
    )
    print(
        f"run {run.run_id} ({run.run_name}) of {name} version {run.version_name} in experiment "
        f"{args.experiment}: {run.state or 'submitted'}"
    )
    if args.wait:
        return 0 if run.state.upper() == kfpclient.FINISHED_OK else 1
    return 0


def _diff_spec(args: argparse.Namespace) -> int:
    from aiact.specdiff import diff_files, render

    diff = diff_files(args.old, args.new)
    print(render(diff, args.format), end="")
    return diff.exit_code


def _generate_data(args: argparse.Namespace) -> int:
    from aiact.refdata import write_reference_dataset

    if args.example == "income":
        from aiact.exampledata import write_income_dataset

        income = write_income_dataset(args.out, rows=args.rows or 1200, seed=args.seed)
        print(f"wrote {income.data_path} ({income.rows} rows) and {income.data_card_path}")
        return 0
    written = write_reference_dataset(
        args.out,
        rows=args.rows or 5000,
        seed=args.seed,
        label_bias=args.label_bias,
        drift=args.drift,
        corruption=args.corruption,
    )
    print(f"wrote {written.data_path} and {written.data_card_path}")
    return 0


def _init_use_case(args: argparse.Namespace) -> int:
    from aiact.init_usecase import InitOptions, init_use_case, split_list

    result = init_use_case(
        InitOptions(
            data=args.data,
            label=args.label,
            favourable=args.favourable,
            protected=split_list(args.protected),
            out=args.out,
            name=args.name or "",
            identifiers=split_list(args.id or ""),
            passthrough=split_list(args.passthrough or ""),
            ignore=split_list(args.ignore or ""),
            missing=split_list(args.missing or ""),
        )
    )
    use_case = result.use_case
    print(
        f"wrote use case {use_case.name} to {result.directory} (validated, sha256 "
        f"{use_case.sha256[:12]})"
    )
    print(f"  numeric features:     {', '.join(result.numeric) or '-'}")
    print(f"  categorical features: {', '.join(result.categorical) or '-'}")
    print(f"  protected attributes: {', '.join(use_case.protected_attributes)}")
    print(
        f"  label:                {use_case.label.column} (favourable "
        f"{use_case.label.favourable!r} of {list(use_case.label.values)})"
    )
    print(
        f"  left out:             {', '.join(result.ignored) or '-'} (the data gate reports "
        "and drops them)"
    )
    print("policy.yaml differs from the credit policy in (see its header):")
    for note in result.notes:
        print(f"  - {note}")
    print(
        f"next: fill in every TODO field of {result.directory / 'data_card.yaml'} (data "
        "preparation refuses the card until owner, origin, licence, collection_date and "
        f"intended_use are filled), review policy.yaml, then run\n  aiact run-local --source "
        f"{args.data} --use-case {result.directory}"
    )
    return 0


def _infer_schema(args: argparse.Namespace) -> int:
    import tempfile

    import tensorflow_data_validation as tfdv

    from aiact.usecase import load_use_case
    from components.data_preparation.core import read_table
    from components.data_preparation.schema import draft_schema

    with tempfile.TemporaryDirectory() as scratch:
        use_case = load_use_case(args.use_case, Path(scratch))
    vocabularies = {
        **{f.name: f.vocabulary for f in use_case.spec.categorical},
        **use_case.protected_attributes,
    }
    frame = read_table(args.data, use_case.missing_values)
    declared = [c for c in use_case.gated_columns if c in frame.columns]
    schema = draft_schema(frame[declared], use_case.spec, vocabularies, use_case.label.values)
    tfdv.write_schema_text(schema, str(args.out))
    print(f"wrote draft schema {args.out}: review it, then commit it as the declared schema")
    return 0


def _verify_ledger(args: argparse.Namespace) -> int:
    from aiact.custody import verify_ledger
    from aiact.ledger import LedgerError

    try:
        head = verify_ledger(LineageStore.connect(args.metadata_uri), args.ledger)
    except LedgerError as exc:
        print(f"aiact: ledger broken: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    print(
        f"ledger intact and complete: {head.sequence} entries, head sha256:{head.entry_sha256}, "
        "every entry matches a deployment in the metadata store and vice versa"
    )
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from aiact.deployer.rollback import record_rollback, run_rollback
    from components.deployment.core import DeploymentRefused

    store = LineageStore.connect(args.metadata_uri)
    try:
        status = run_rollback(
            args.name,
            reason=args.reason,
            requested_by=args.requested_by or getpass.getuser(),
            deployments=args.deployments,
            ledger_uri=args.ledger,
            store=store,
            timeout_s=args.timeout,
        )
        record_rollback(store, status, args.workdir)
    except DeploymentRefused as exc:
        print(f"aiact: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(status["message"])
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="aiact", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    metadata_default = f"sqlite://{(DEFAULT_WORKDIR / 'mlmd.sqlite').resolve()}"
    approvals_default = f"local:{(DEFAULT_WORKDIR / 'approvals').resolve()}"

    run = commands.add_parser("run-local", help="run all eight stages locally (kfp.local)")
    run.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    run.add_argument(
        "--demo-approver",
        help="record a named DEMO approval (stored as such; refused for production); "
        "without it the run pauses at approval until a human runs `aiact approve`",
    )
    run.add_argument("--approval-timeout", type=float, default=3600.0, help="seconds")
    run.add_argument("--rows", type=int, default=5000)
    run.add_argument("--data-seed", type=int, default=7)
    run.add_argument("--label-bias", type=float, default=0.0)
    run.add_argument("--drift", type=float, default=0.0)
    run.add_argument("--corruption", type=float, default=0.0)
    run.add_argument(
        "--source",
        help="your data (CSV/Parquet path or s3://); no reference data is generated "
        "(--rows, --data-seed, --label-bias, --drift and --corruption then do not apply)",
    )
    run.add_argument(
        "--use-case", help="use case folder (path or s3://; default: the bundled credit one)"
    )
    run.add_argument(
        "--policy", type=Path, help="gate policy YAML overriding the use case's policy.yaml"
    )
    run.add_argument("--data-card", help="data card overriding the use case's data_card.yaml")
    run.add_argument("--model-name", help="model name (default: the use case's model_name)")
    run.add_argument(
        "--verbose",
        action="store_true",
        help="stream every stage's executor logs (default: one line per stage; the logs go "
        "to WORKDIR/logs/<submission>.log)",
    )
    run.add_argument(
        "--hyperparameters",
        help="training hyperparameters as a JSON object (default: the pipeline's)",
    )
    run.add_argument("--seed", type=int, help="training and split seed (default: 42)")
    run.set_defaults(handler=_run_local)

    resume = commands.add_parser(
        "resume",
        help="re-run a failed or killed run-local run from its first incomplete stage (a new "
        "run whose earlier stages reuse the old run's executions; the old run is marked "
        "abandoned)",
    )
    resume.add_argument("run", help="the run id (see `aiact runs`)")
    resume.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    resume.add_argument("--verbose", action="store_true", help="stream the executors' logs")
    resume.set_defaults(handler=_resume)

    trace = commands.add_parser("trace", help="trace the deployed model to data, code, approval")
    trace.add_argument("--metadata-uri", default=metadata_default)
    trace.add_argument("--run", help="the deployment of this pipeline run (default: the latest)")
    trace.add_argument(
        "--verify",
        action="store_true",
        help="also verify the chain of custody (re-hashing every artefact); exit 1 if broken",
    )
    trace.set_defaults(handler=_trace)

    verify = commands.add_parser(
        "verify-model",
        help="verify a model's chain of custody: its own passed gates, in one run, unaltered",
    )
    verify.add_argument("model", help="model name (its production model), version or sha256")
    verify.add_argument("--metadata-uri", default=metadata_default)
    verify.add_argument("--run", help="the run to verify (default: any run that trained it)")
    verify.add_argument(
        "--through",
        choices=CHAIN,
        help="last stage the chain must reach (default: deployment for a deployed model, "
        "else approval)",
    )
    verify.add_argument("--all", action="store_true", help="every matching model, not the newest")
    verify.set_defaults(handler=_verify_model)

    bundle = commands.add_parser(
        "evidence-bundle", help="write a run's evidence, mapped to AI Act articles"
    )
    bundle.add_argument("--run", help="pipeline run id (see `aiact runs`)")
    bundle.add_argument("--out", type=Path, help="folder to write (index.html, SHA256SUMS, ...)")
    bundle.add_argument("--metadata-uri", default=metadata_default)
    bundle.add_argument(
        "--verify",
        type=Path,
        metavar="DIR",
        help="re-hash every file of the bundle in DIR against its SHA256SUMS and the MLMD "
        "records in its manifest; exit 1 naming the first mismatch",
    )
    bundle.set_defaults(handler=_evidence_bundle)

    runs = commands.add_parser("runs", help="list recorded pipeline runs")
    runs.add_argument("--metadata-uri", default=metadata_default)
    runs.set_defaults(handler=_runs)

    for verdict, name in ((APPROVED, "approve"), (REJECTED, "reject")):
        decide = commands.add_parser(name, help=f"{name} a pending deployment")
        decide.add_argument("name")
        decide.add_argument("--reason", required=True)
        decide.add_argument(
            "--approver",
            help="defaults to the current user (with kubernetes:// always your cluster identity)",
        )
        decide.add_argument("--approvals", default=approvals_default, help=APPROVALS_HELP)
        decide.add_argument(
            "--acknowledge",
            action="append",
            metavar="FINDING",
            help="explicitly accept a finding the request lists as needing acknowledgement "
            "(e.g. 'insufficient_data[age_band]'); repeat for each",
        )
        decide.set_defaults(handler=lambda a, v=verdict: _decide(a, v))

    pending = commands.add_parser("approvals", help="list approvals awaiting a decision")
    pending.add_argument("--approvals", default=approvals_default, help=APPROVALS_HELP)
    pending.add_argument(
        "--review",
        metavar="NAME",
        help="fetch request NAME's review page (a path or s3://) into --out DIR, refused unless "
        "it hashes to the sha256 the request names",
    )
    pending.add_argument("--out", type=Path, metavar="DIR", help="where --review writes the page")
    pending.set_defaults(handler=_pending)

    comp = commands.add_parser("compile", help="compile the pipeline into its versioned YAML")
    comp.add_argument("--check", action="store_true", help="fail if the committed YAML is stale")
    comp.add_argument(
        "--components",
        action="store_true",
        help="only components/<stage>/{component.yaml,metadata.yaml,README.md} (default: "
        "those and the pipeline spec)",
    )
    comp.add_argument(
        "--image-digests",
        type=Path,
        metavar="FILE",
        help="pin the stage images to the digests in FILE (images/digests.json, written by "
        "hack/build-images.sh --push): REGISTRY/name@sha256:... instead of tags",
    )
    comp.set_defaults(handler=_compile)

    verify_spec = commands.add_parser(
        "verify-spec",
        help="prove from a compiled spec's DAG that every deployment is behind the declared "
        "gates, in order, by data; exit 1 with one line per violation",
    )
    verify_spec.add_argument("spec", type=Path, help="compiled KFP v2 pipeline spec (YAML)")
    verify_spec.add_argument(
        "--structure",
        type=Path,
        metavar="FILE",
        help="the declared structure (default: pipelines/compliance_structure.yaml)",
    )
    verify_spec.set_defaults(handler=_verify_spec)

    def kfp_connection(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--endpoint", default="", help="KFP API URL (default: $KF_PIPELINES_ENDPOINT)"
        )
        sub.add_argument(
            "--token",
            default="",
            help="bearer token (default: $KF_PIPELINES_TOKEN, else the file named by "
            "$KF_PIPELINES_SA_TOKEN_PATH)",
        )

    upload = commands.add_parser(
        "upload", help="upload the compiled spec as a KFP pipeline version named by the commit"
    )
    upload.add_argument(
        "spec", nargs="?", type=Path, help="compiled spec (default: the bundled pipeline's)"
    )
    upload.add_argument("--pipeline-name", default="", help="default: the spec's pipelineInfo.name")
    upload.add_argument("--version", default="", help="version name (default: the git commit)")
    upload.add_argument(
        "--allow-dirty",
        action="store_true",
        help="upload from a checkout with uncommitted changes (version <commit>-dirty-<time>)",
    )
    kfp_connection(upload)
    upload.set_defaults(handler=_upload)

    submit = commands.add_parser("submit", help="start a KFP run of an uploaded pipeline version")
    submit.add_argument("--pipeline-name", default="", help="default: the bundled spec's name")
    submit.add_argument("--version", default="", help="version name (default: the newest)")
    submit.add_argument("--experiment", default="aiact", help="created when missing")
    submit.add_argument("--run-name", default="")
    submit.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="run parameter; VALUE as JSON when it parses, else a string (repeatable)",
    )
    submit.add_argument("--wait", action="store_true", help="wait; exit 1 unless it succeeded")
    submit.add_argument("--timeout", type=int, default=6 * 3600, help="--wait limit, seconds")
    kfp_connection(submit)
    submit.set_defaults(handler=_submit)

    diff_spec = commands.add_parser(
        "diff-spec",
        help="compliance diff of two compiled specs, gate policies or platform configurations; "
        "exit 1 when a compliance-relevant change is found",
    )
    diff_spec.add_argument("old", type=Path, help="the old spec, policy.yaml or platform.yaml")
    diff_spec.add_argument("new", type=Path, help="the new file, of the same kind")
    diff_spec.add_argument("--format", choices=("markdown", "text"), default="markdown")
    diff_spec.set_defaults(handler=_diff_spec)

    data = commands.add_parser(
        "generate-data", help="write the reference credit dataset (or the income example)"
    )
    data.add_argument("--out", type=Path, required=True)
    data.add_argument(
        "--example",
        choices=("credit", "income"),
        default="credit",
        help="credit: the bundled use case's reference data; income: census-style data with "
        "the quirks of real public data, for `aiact init-use-case` (only --rows and --seed "
        "apply)",
    )
    data.add_argument("--rows", type=int, help="default 5000 (credit), 1200 (income)")
    data.add_argument("--seed", type=int, default=0)
    data.add_argument("--label-bias", type=float, default=0.0)
    data.add_argument("--drift", type=float, default=0.0)
    data.add_argument("--corruption", type=float, default=0.0)
    data.set_defaults(handler=_generate_data)

    init = commands.add_parser(
        "init-use-case",
        help="draft a use case folder (declaration, schema, policy, data card) from a sample",
    )
    init.add_argument("data", type=Path, help="a clean sample of the data (CSV or Parquet)")
    init.add_argument("--label", required=True, help="the label column")
    init.add_argument("--favourable", required=True, help="the label's favourable value")
    init.add_argument("--protected", required=True, help="protected attribute columns: COL[,COL]")
    init.add_argument("--out", type=Path, required=True, help="folder to write (must not hold one)")
    init.add_argument("--name", help="use case name (a-z, 0-9, '-'; default: from the file name)")
    init.add_argument("--id", help="identifier columns (kept, never a model input): COL[,COL]")
    init.add_argument("--passthrough", help="columns kept but never a model input: COL[,COL]")
    init.add_argument(
        "--ignore", help="columns left out of the use case (reported and dropped): COL[,COL]"
    )
    init.add_argument("--missing", help="tokens meaning a missing value, e.g. '?': TOKEN[,TOKEN]")
    init.set_defaults(handler=_init_use_case)

    schema = commands.add_parser("infer-schema", help="draft a TFDV schema from clean data")
    schema.add_argument("data", type=Path)
    schema.add_argument("--out", type=Path, required=True)
    schema.add_argument(
        "--use-case", default="", help="use case folder (path or s3://); default: the bundled one"
    )
    schema.set_defaults(handler=_infer_schema)

    ledger = commands.add_parser(
        "verify-ledger",
        help="check the deployment ledger's chain and cross-check it with the metadata store",
    )
    ledger.add_argument(
        "--ledger",
        default=f"file://{(DEFAULT_WORKDIR / 'ledger').resolve()}",
        help="file:///dir or s3://bucket/prefix (default: run-local's ledger)",
    )
    ledger.add_argument("--metadata-uri", default=metadata_default)
    ledger.set_defaults(handler=_verify_ledger)

    rollback = commands.add_parser(
        "rollback",
        help="restore the previous production model of NAME through the deployer",
    )
    rollback.add_argument("name", help="the model (InferenceService) name")
    rollback.add_argument("--reason", required=True, help="why (recorded in the ledger)")
    rollback.add_argument(
        "--deployments",
        default="",
        help="kubernetes://NAMESPACE: a DeploymentRequest for the cluster's deployer there; "
        "default: the local deployer in-process (nothing applied)",
    )
    rollback.add_argument(
        "--ledger",
        default=f"file://{(DEFAULT_WORKDIR / 'ledger').resolve()}",
        help="the local ledger (in-process only; a cluster uses the platform's)",
    )
    rollback.add_argument("--metadata-uri", default=metadata_default)
    rollback.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    rollback.add_argument("--requested-by", default="", help="default: your login name")
    rollback.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait")
    rollback.set_defaults(handler=_rollback)

    board = commands.add_parser(
        "dashboard",
        help="write the governance dashboard (gate rates over time, per model and use case)",
    )
    board.add_argument("--out", type=Path, required=True, help="folder for index.html and runs/")
    board.add_argument("--metadata-uri", default=metadata_default)
    board.add_argument("--since", help="only runs started on or after this UTC date (2026-01-31)")
    board.set_defaults(handler=_dashboard)

    reverse = commands.add_parser(
        "impact", help="which runs, models and deployments used a dataset, policy or commit"
    )
    reverse.add_argument(
        "query", help="dataset or policy sha256 (or prefix), artefact id or URI, or code commit"
    )
    reverse.add_argument("--metadata-uri", default=metadata_default)
    reverse.add_argument("--json", action="store_true", help="print JSON instead of text")
    reverse.set_defaults(handler=_impact)
    return parser


def _known_errors() -> tuple[type[BaseException], ...]:
    """Every failure the suite reports as one line (never a traceback)."""
    from aiact.ledger import LedgerError
    from aiact.platform import PlatformError
    from aiact.policy import GateFailed
    from aiact.storage import StorageError

    return (
        ApprovalError,
        LineageError,
        LedgerError,
        PlatformError,
        StorageError,
        GateFailed,
        OSError,
        ValueError,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `aiact` console script. A broken chain of custody exits 1; every
    other known failure exits 2; both with one line on stderr."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except CustodyError as exc:
        print(f"aiact: chain of custody broken: {exc}", file=sys.stderr)
        return 1
    except _known_errors() as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"aiact: {message}", file=sys.stderr)
        return 2
    return code


def kubectl_plugin_main(argv: list[str] | None = None) -> int:
    """Entry point of the `kubectl-aiact` plugin: `kubectl aiact approve|reject|approvals`
    against ModelApprovals in `-n NAMESPACE` (default: the kubeconfig context's namespace)."""
    plugin = argparse.ArgumentParser(prog="kubectl aiact", add_help=False)
    plugin.add_argument("-n", "--namespace", default="")
    known, rest = plugin.parse_known_args(sys.argv[1:] if argv is None else argv)
    if not rest or rest[0] not in PLUGIN_COMMANDS:
        print(
            "usage: kubectl aiact {approve,reject} NAME --reason TEXT [-n NAMESPACE]\n"
            "       kubectl aiact approvals [--review NAME --out DIR] [-n NAMESPACE]",
            file=sys.stderr,
        )
        return 2
    if any(arg == "--approvals" or arg.startswith("--approvals=") for arg in rest):
        print("kubectl aiact: use -n NAMESPACE instead of --approvals", file=sys.stderr)
        return 2
    return main([*rest, "--approvals", f"kubernetes://{known.namespace}"])
