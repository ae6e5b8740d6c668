"""Per-run evidence bundle: every artefact and execution of a pipeline run, mapped to the AI Act
article it evidences, with content hashes, written as a static site an auditor can archive and
open offline years later.

Layout of a bundle folder:

- ``index.html``: the run's chain-of-custody verdict and outcome at the top, every stage with its
  verdict, then each article (9, 10, 11 / Annex IV, 12, 13, 14, 15) with the records that
  evidence it (which stage's execution wrote or read them, their verdicts), links to the files
  and every file's sha256;
- ``evidence/``: copies of the run's artefacts, each with a proper extension (a JSON report gets
  ``.json``, a data card ``.yaml``); a directory artefact is copied as a folder keeping its inner
  names;
- ``views/``: an HTML view of every JSON document (gate verdict, checks, sections);
- ``manifest.json``: the same mapping as data, with every file's sha256;
- ``SHA256SUMS``: every file's sha256 in ``sha256sum`` format (``sha256sum -c SHA256SUMS``).

Every artefact is re-hashed from storage and compared with its MLMD record before it is copied,
and every copy is re-hashed after; ``verify_bundle`` (``aiact evidence-bundle --verify DIR``)
re-checks a bundle later, offline, against ``SHA256SUMS`` and the records in its manifest."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from aiact import lineage, pages
from aiact.custody import CHAIN, GATE_REPORTS, CustodyError, Link, Verifier
from aiact.evidence import write_atomic
from aiact.hashing import canonical_json, sha256_file, sha256_path
from aiact.lineage import LineageStore, PropertyValue, properties_of

MAX_COPY_BYTES = 5 * 2**20
INDEX = "index.html"
MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
EVIDENCE = "evidence"
VIEWS = "views"

ARTICLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "Art. 9": (
        "Risk management system: declared thresholds and every gate verdict",
        (
            lineage.GATE_POLICY,
            lineage.DATA_VALIDATION_REPORT,
            lineage.EVALUATION_REPORT,
            lineage.INTEGRATION_TEST_REPORT,
        ),
    ),
    "Art. 10": (
        "Data and data governance: documented sources, quality checks, versioned data",
        (
            lineage.RAW_DATASET,
            lineage.DATA_CARD,
            lineage.DATA_VALIDATION_REPORT,
            lineage.DATASET,
            lineage.FEATURE_SET,
            lineage.FEATURE_TRANSFORM,
        ),
    ),
    "Art. 11 / Annex IV": (
        "Technical documentation: code, pipeline spec, training and evaluation records",
        (
            lineage.TRAINING_REPORT,
            lineage.MODEL,
            lineage.EVALUATION_REPORT,
            lineage.MODEL_REGISTRATION,
        ),
    ),
    "Art. 12": (
        "Record-keeping: executions with times and outcomes, deployment ledger entry",
        (lineage.DEPLOYMENT,),
    ),
    "Art. 13": (
        "Transparency and provision of information to deployers: the registered model, its "
        "training record and its model card",
        (lineage.MODEL_REGISTRATION, lineage.TRAINING_REPORT),
    ),
    "Art. 14": ("Human oversight: the pre-deployment decision", (lineage.APPROVAL,)),
    "Art. 15": (
        "Accuracy, robustness and cybersecurity: holdout evaluation and integration tests",
        (lineage.EVALUATION_REPORT, lineage.INTEGRATION_TEST_REPORT),
    ),
}
# Records an article shows when the run has them, never reported missing: fragments of type
# names (gate verdicts, a model card, the model server's log and an approval review page are
# newer artefacts; older runs lack them).
OPTIONAL: dict[str, tuple[str, ...]] = {
    "Art. 9": ("GateVerdict",),
    "Art. 10": (lineage.USE_CASE,),
    "Art. 11 / Annex IV": ("ModelCard",),
    "Art. 12": ("Log",),
    "Art. 13": ("ModelCard",),
    "Art. 14": ("Review",),
}
# Extensions a copied file keeps; a file with none (KFP output files have none) gets one from
# its content.
KNOWN_SUFFIXES = frozenset(
    {
        ".json",
        ".jsonl",
        ".html",
        ".htm",
        ".csv",
        ".tsv",
        ".yaml",
        ".yml",
        ".pbtxt",
        ".txt",
        ".md",
        ".log",
        ".xml",
        ".svg",
        ".png",
        ".parquet",
        ".npy",
        ".npz",
        ".pt",
        ".pkl",
        ".gz",
        ".zip",
    }
)
PASSED, BREACHED, FAILED, COMPLETED = "passed", "breached", "failed", "completed"


class BundleError(ValueError):
    """A bundle's files differ from its SHA256SUMS or from the records in its manifest."""


# -- verdicts ---------------------------------------------------------------------------------


def stage_verdict(stage: str, state: str, props: Mapping[str, PropertyValue]) -> str:
    """The verdict of one execution, from either representation of a gate: the evidence
    execution COMPLETE with a `verdict` property ("passed"/"breached"), or (older records) the
    gate's execution FAILED with outcome GateFailed. Non-gate stages are `completed` or
    `failed`; an execution still running reports its state."""
    recorded = str(props.get("verdict", "")).strip().lower()
    breaches = str(props.get("gate_breaches", "")).strip()
    if recorded in (BREACHED, FAILED):
        return BREACHED
    if state == "FAILED":
        return BREACHED if props.get("outcome") == "GateFailed" or breaches else FAILED
    if recorded == PASSED:
        return PASSED
    if state == "COMPLETE":
        if breaches:
            return BREACHED
        return PASSED if stage in GATE_REPORTS else COMPLETED
    return state.lower() or "unknown"


def verdict_label(verdict: str, props: Mapping[str, PropertyValue]) -> str:
    """How a verdict reads in the index."""
    if verdict == BREACHED:
        return "FAILED: gate breached"
    if verdict == FAILED:
        return f"FAILED: {props.get('outcome') or 'error'}"
    return verdict.upper() if verdict == PASSED else verdict


def verdict_css(verdict: str) -> str:
    """The style class of a verdict."""
    if verdict in (PASSED, COMPLETED):
        return "pass"
    return "fail" if verdict in (BREACHED, FAILED) else "pending"


# -- copies -----------------------------------------------------------------------------------


def extension_for(path: Path) -> str:
    """The extension a copy of an evidence file gets: its own when it has a known one, else
    one chosen from the content (JSON, HTML, text, else binary)."""
    if path.suffix.lower() in KNOWN_SUFFIXES:
        return path.suffix.lower()
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return ".bin"
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            json.loads(text)
            return ".json"
        except ValueError:
            pass
    if stripped[:15].lower().startswith(("<!doctype html", "<html")):
        return ".html"
    return ".txt"


def _file(out: Path, path: Path) -> dict[str, Any]:
    return {
        "path": path.relative_to(out).as_posix(),
        "sha256": sha256_file(path),
        "bytes": path.stat().st_size,
    }


def _unique(base: str, used: set[str]) -> str:
    name, number = base, 2
    while name.lower() in used:
        name, number = f"{base}-{number}", number + 1
    used.add(name.lower())
    return name


def _copy(
    verifier: Verifier,
    artifact: mlmd_pb.Artifact,
    entry: dict[str, Any],
    out: Path,
    used: set[str],
) -> None:
    """Copy an artefact's content into `out/evidence`, re-hashing the copy."""
    props = properties_of(artifact)
    stem = f"{entry['type'].removeprefix('aiact.')}-{props.get('version', artifact.id)}"
    evidence = out / EVIDENCE
    if "policy_json" in props:
        # The policy's identity is the hash of its canonical JSON: written so, the file's
        # sha256 is the recorded one (check_content verified the text against it).
        name = _unique(stem, used) + ".json"
        text = canonical_json(json.loads(str(props["policy_json"]))).decode()
        write_atomic(evidence / name, text)
        entry["copy"] = name
        entry["copy_sha256"] = sha256_file(evidence / name)
        entry["files"] = [_file(out, evidence / name)]
        return
    source = verifier.local_path(artifact)
    if source.is_file():
        size = source.stat().st_size
        if size > MAX_COPY_BYTES:
            entry["not_copied"] = f"{size} bytes, over the {MAX_COPY_BYTES} bytes copy limit"
            return
        name = _unique(stem, used) + extension_for(source)
        target = evidence / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        entry["copy"] = name
        entry["copy_sha256"] = sha256_file(target)
        if entry["copy_sha256"] != entry["sha256"]:
            raise CustodyError(f"copy of {entry['type']} {entry['sha256'][:12]} differs from it")
        entry["files"] = [_file(out, target)]
        return
    if not source.is_dir():
        entry["not_copied"] = "its content is not a file or a folder"
        return
    folder = _unique(stem, used)
    target_dir = evidence / folder
    target_dir.mkdir(parents=True)
    skipped = []
    for child in sorted(p for p in source.rglob("*") if p.is_file()):
        relative = child.relative_to(source)
        if child.stat().st_size > MAX_COPY_BYTES:
            skipped.append({"path": relative.as_posix(), "sha256": sha256_file(child)})
            continue
        destination = target_dir / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(child, destination)
    entry["copy_dir"] = folder
    entry["files"] = [
        _file(out, p) for p in sorted(target_dir.rglob("*")) if p.is_file() and not p.is_symlink()
    ]
    if skipped:
        entry["not_copied"] = f"{len(skipped)} file(s) over the {MAX_COPY_BYTES} bytes copy limit"
        entry["skipped_files"] = skipped
        return
    entry["copy_tree_sha256"] = sha256_path(target_dir)
    if entry["copy_tree_sha256"] != entry["sha256"]:
        raise CustodyError(f"copy of {entry['type']} {entry['sha256'][:12]} differs from it")


# -- records ----------------------------------------------------------------------------------


def _uses(links: Iterable[Link]) -> dict[int, list[dict[str, Any]]]:
    """Per artefact id, the executions that wrote (output) or read (input) it, with roles."""
    uses: dict[int, list[dict[str, Any]]] = {}
    for link in links:
        verdict = stage_verdict(link.stage, link.state, link.properties)
        for direction, artifacts in (("output", link.outputs), ("input", link.inputs)):
            for role, artifact in artifacts.items():
                uses.setdefault(artifact.id, []).append(
                    {
                        "stage": link.stage,
                        "execution_id": link.execution_id,
                        "direction": direction,
                        "role": role,
                        "state": link.state,
                        "verdict": verdict,
                    }
                )
    return uses


def _artifact_entry(
    verifier: Verifier,
    artifact: mlmd_pb.Artifact,
    type_name: str,
    uses: list[dict[str, Any]],
    out: Path,
    used: set[str],
) -> dict[str, Any]:
    """The manifest entry of one artefact; its content is re-hashed first, so an artefact
    edited after it was recorded stops the bundle instead of being copied."""
    props = properties_of(artifact)
    entry: dict[str, Any] = {
        "id": artifact.id,
        "type": type_name,
        "uri": artifact.uri,
        "sha256": props.get("content_sha256", artifact.name),
        "version": props.get("version", ""),
        "properties": {k: v for k, v in props.items() if k not in ("policy_json",)},
        "produced_by": [u for u in uses if u["direction"] == "output"],
        "used_by": [u for u in uses if u["direction"] == "input"],
        "files": [],
    }
    if isinstance(props.get("passed"), bool):
        entry["verdict"] = PASSED if props["passed"] else FAILED
    elif str(props.get("verdict", "")) in (PASSED, BREACHED):  # a gate's verdict artefact
        entry["verdict"] = PASSED if props["verdict"] == PASSED else FAILED
    verifier.check_content(artifact)
    entry["verified"] = True
    _copy(verifier, artifact, entry, out, used)
    return entry


def _custody(verifier: Verifier, run_id: str) -> dict[str, Any]:
    """The chain-of-custody verdict of the run's model, through the furthest stage it reached
    (a halted run's chain is reported as incomplete, with the reason)."""
    links = verifier.links_of_run(run_id)
    produced = [link for link in links if link.stage == "training" and link.output("model")]
    if not produced:
        return {"verified": False, "reason": "the run produced no model"}
    model = produced[-1].output("model")
    reached = [link.stage for link in links]  # attempted: a halted stage breaks the chain
    through = max((s for s in reached if s in CHAIN), key=CHAIN.index, default="training")
    try:
        custody = verifier.verify_model(model, run_id=run_id, through=through)
    except CustodyError as exc:
        return {"verified": False, "model_sha256": model, "through": through, "reason": str(exc)}
    return {
        "verified": True,
        "custody_sha256": custody.sha256(),
        "checks": custody.checks,
        **custody.summary(),
    }


def _executions(links: Iterable[Link]) -> list[dict[str, Any]]:
    rows = []
    for link in links:
        props = link.properties
        verdict = stage_verdict(link.stage, link.state, props)
        row: dict[str, Any] = {
            "stage": link.stage,
            "execution_id": link.execution_id,
            "state": link.state,
            "verdict": verdict,
            **{
                k: props[k]
                for k in (
                    "started_at_ms",
                    "duration_s",
                    "outcome",
                    "error",
                    "gate_breaches",
                    # A reused execution (aiact.reuse): which execution of which run it reused.
                    "reused_execution_id",
                    "reused_from_run",
                    "reuse_key",
                )
                if k in props
            },
        }
        if "verdict" in props:
            row["recorded_verdict"] = props["verdict"]
        rows.append(row)
    return rows


def _outcome(executions: list[dict[str, Any]]) -> dict[str, str]:
    """The run's outcome in one line: halted at the first failed stage, deployed, or not yet
    through."""
    halted = [e for e in executions if e["verdict"] in (BREACHED, FAILED)]
    if halted:
        first = halted[0]
        if first["verdict"] == BREACHED:
            why = f"gate breached ({first.get('gate_breaches') or 'see its report'})"
        else:
            why = f"{first.get('outcome', 'failed')}: {str(first.get('error', ''))[:300]}"
        return {"text": f"HALTED at {first['stage']}: {why}", "css": "fail"}
    if any(e["stage"] == "deployment" and e["state"] == "COMPLETE" for e in executions):
        return {"text": "DEPLOYED: every stage completed and every gate passed", "css": "pass"}
    reached = executions[-1]["stage"] if executions else "no stage"
    return {"text": f"NOT COMPLETE: the run reached {reached}", "css": "pending"}


def _matches(article: str, type_name: str) -> bool:
    return type_name in ARTICLES[article][1] or any(
        fragment in type_name for fragment in OPTIONAL.get(article, ())
    )


# -- pages ------------------------------------------------------------------------------------


def _json_document(out: Path, entry: dict[str, Any]) -> Any:
    copy = entry.get("copy", "")
    if not copy.endswith(".json"):
        return None
    try:
        return json.loads((out / EVIDENCE / copy).read_text())
    except (OSError, ValueError):
        return None


def _stage_pages(entries: list[dict[str, Any]]) -> dict[int, str]:
    """Per JSON record (by artefact id), the HTML page the same execution wrote about it (the
    stage's own report): a page whose type extends the record's (aiact.ModelCard ->
    aiact.ModelCardPage), or the only page beside the only JSON document the execution wrote."""
    pages_of: dict[int, list[dict[str, Any]]] = {}
    documents_of: dict[int, list[dict[str, Any]]] = {}
    for entry in entries:
        copy = str(entry.get("copy", ""))
        target = pages_of if copy.endswith((".html", ".htm")) else documents_of
        if copy.endswith((".html", ".htm", ".json")):
            for use in entry["produced_by"]:
                target.setdefault(use["execution_id"], []).append(entry)
    found: dict[int, str] = {}
    for execution_id, documents in documents_of.items():
        candidates = pages_of.get(execution_id, [])
        for document in documents:
            named = [p for p in candidates if p["type"].startswith(document["type"])]
            if not named and len(candidates) == 1 and len(documents) == 1:
                named = candidates
            if named:
                found[document["id"]] = f"{EVIDENCE}/{named[0]['copy']}"
    return found


def _write_views(out: Path, run_id: str, entries: list[dict[str, Any]]) -> None:
    stage_pages = _stage_pages(entries)
    for entry in entries:
        document = _json_document(out, entry)
        if not isinstance(document, dict):
            continue
        own = stage_pages.get(entry["id"], "")
        if own:
            entry["stage_html"] = own
        gate = document.get("gate") if isinstance(document.get("gate"), dict) else None
        sections = document.get("sections") if isinstance(document.get("sections"), dict) else None
        rest = {
            k: v
            for k, v in document.items()
            if not (k == "gate" and gate is not None) and not (k == "sections" and sections)
        }
        name = Path(entry["copy"]).with_suffix(".html").name
        page = pages.render(
            "bundle_document.html.j2",
            title=f"{entry['type']} {entry['version']} — run {run_id}",
            run_id=run_id,
            entry=entry,
            raw=f"../{EVIDENCE}/{entry['copy']}",
            stage_html=f"../{own}" if own else "",
            gate=gate,
            sections=sections or {},
            rest=rest,
        )
        write_atomic(out / VIEWS / name, page)
        entry["view"] = f"{VIEWS}/{name}"
        entry["files"].append(_file(out, out / VIEWS / name))


def _when(ms: Any) -> str:
    if not isinstance(ms, int | float) or isinstance(ms, bool) or ms <= 0:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _details(record: Mapping[str, Any]) -> list[str]:
    """A record's MLMD properties as short `key: value` lines (hash and version are shown
    apart)."""
    lines = []
    for key, value in sorted(record["properties"].items()):
        if key in ("content_sha256", "version") or value == "":
            continue
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        lines.append(f"{key}: {text if len(text) <= 160 else text[:157] + '...'}")
    return lines


def _index(manifest: dict[str, Any], outcome: dict[str, str], files: list[dict[str, Any]]) -> str:
    custody = manifest["custody"]
    articles = []
    for key, content in manifest["articles"].items():
        heading, _, description = content["title"].partition(": ")
        articles.append(
            {
                "key": key,
                "heading": heading,
                "description": description,
                "records": content["evidence"],
                "missing": content["missing"],
            }
        )
    stages = [
        {
            **row,
            "label": verdict_label(row["verdict"], row),
            "css": verdict_css(row["verdict"]),
            "started": _when(row.get("started_at_ms")),
            "detail": str(
                row.get("gate_breaches")
                or row.get("error")
                or (
                    f"reused execution {row['reused_execution_id']} of run "
                    f"{row.get('reused_from_run', '?')} (reuse key "
                    f"{str(row.get('reuse_key', ''))[:12]})"
                    if row.get("reused_execution_id")
                    else ""
                )
            )[:600],
        }
        for row in manifest["executions"]
    ]
    mapped = {id(r) for a in manifest["articles"].values() for r in a["evidence"]}
    return pages.render(
        "bundle_index.html.j2",
        title=f"Evidence bundle — run {manifest['run_id']}",
        run_id=manifest["run_id"],
        run=manifest["run"],
        custody=custody,
        outcome=outcome,
        stages=stages,
        articles=articles,
        others=[r for r in manifest["records"] if id(r) not in mapped],
        files=files,
        verdict_css=verdict_css,
        verdict_label=verdict_label,
        details=_details,
    )


# -- SHA256SUMS -------------------------------------------------------------------------------


def _sums_line(digest: str, name: str) -> str:
    """One line in GNU sha256sum format (names with a backslash or newline escaped as it does)."""
    if any(c in name for c in "\\\n\r"):
        escaped = name.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        return f"\\{digest}  {escaped}\n"
    return f"{digest}  {name}\n"


_SUMS_LINE = re.compile(r"^(\\?)([0-9a-f]{64}) [ *](.+)$")


def read_sums(path: Path) -> dict[str, str]:
    """The entries of a SHA256SUMS file: relative name -> sha256."""
    entries: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = _SUMS_LINE.match(line)
        if match is None:
            raise BundleError(f"{SUMS} line {number} is not '<sha256>  <file>': {line[:80]!r}")
        name = match.group(3)
        if match.group(1):
            name = re.sub(
                r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), name
            )
        if name.startswith("/") or ".." in Path(name).parts:
            raise BundleError(f"{SUMS} line {number} names a file outside the bundle: {name!r}")
        entries[name] = match.group(2)
    return entries


def _bundle_files(directory: Path) -> list[str]:
    return sorted(
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if (p.is_file() or p.is_symlink()) and p.name != SUMS
    )


# -- writing and verifying --------------------------------------------------------------------


def _is_bundle(directory: Path) -> bool:
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and "articles" in manifest and "run_id" in manifest


def _check_target(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir} exists and is not a folder: choose another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not _is_bundle(out_dir):
        raise ValueError(
            f"{out_dir} is not empty and holds no evidence bundle: choose an empty or new folder"
        )


def _build(store: LineageStore, run_id: str, out: Path) -> dict[str, Any]:
    context = store.run_context(run_id)
    (out / EVIDENCE).mkdir(parents=True, exist_ok=True)
    type_names = {t.id: t.name for t in store.store.get_artifact_types()}
    used: set[str] = set()
    with Verifier(store) as verifier:
        links = verifier.links_of_run(run_id)
        uses = _uses(links)
        records = [
            _artifact_entry(verifier, a, type_names[a.type_id], uses.get(a.id, []), out, used)
            for a in sorted(store.store.get_artifacts_by_context(context.id), key=lambda a: a.id)
        ]
        custody = _custody(verifier, run_id)
    _write_views(out, run_id, records)
    articles = {}
    for article, (title, types) in ARTICLES.items():
        evidence = [r for r in records if _matches(article, r["type"])]
        missing = sorted(set(types) - {r["type"] for r in evidence})
        articles[article] = {"title": title, "evidence": evidence, "missing": missing}
    executions = _executions(links)
    outcome = _outcome(executions)
    manifest: dict[str, Any] = {
        "run_id": run_id,
        "run": properties_of(context),
        "custody": custody,
        "outcome": outcome["text"],
        "executions": executions,
        "articles": articles,
        "records": records,
        "files": {f["path"]: f["sha256"] for r in records for f in r["files"]},
    }
    write_atomic(out / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    owners = {f["path"]: r for r in records for f in r["files"]}
    files = [{**_file(out, out / name), "record": owners.get(name)} for name in _bundle_files(out)]
    write_atomic(out / INDEX, _index(manifest, outcome, files))
    sums = "".join(_sums_line(sha256_file(out / n), n) for n in _bundle_files(out))
    write_atomic(out / SUMS, sums)
    return manifest


def write_bundle(store: LineageStore, run_id: str, out_dir: Path) -> dict[str, Any]:
    """Write the run's evidence bundle (index.html, evidence/, views/, manifest.json,
    SHA256SUMS) into `out_dir`, replacing an earlier bundle there; a folder holding anything
    else is refused.

    Every artefact is re-hashed from storage before it is listed or copied: an edited report or
    model raises `CustodyError` naming it, and nothing is left behind. The manifest also carries
    the run's chain-of-custody verdict (`custody`)."""
    _check_target(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        manifest = _build(store, run_id, staging)
        _check_target(out_dir)
        if out_dir.is_dir():
            shutil.rmtree(out_dir)
        os.chmod(staging, 0o755)
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def verify_bundle(directory: Path) -> dict[str, Any]:
    """Re-hash every file of a bundle against its SHA256SUMS, check that no file was added,
    that the manifest records the same hashes, and that each copied artefact still hashes to
    its MLMD record as the manifest states it. Raises `BundleError` naming the first mismatch;
    returns the run id and the number of files checked."""
    if not directory.is_dir():
        raise BundleError(f"{directory}: no such folder")
    if not (directory / SUMS).is_file():
        raise BundleError(f"{directory}: no {SUMS}: not an evidence bundle, or it was removed")
    listed = read_sums(directory / SUMS)
    for name, digest in sorted(listed.items()):
        path = directory / name
        if not path.is_file() or path.is_symlink():
            raise BundleError(f"{name}: listed in {SUMS} but missing from the bundle")
        actual = sha256_file(path)
        if actual != digest:
            raise BundleError(
                f"{name}: sha256 {actual} differs from {SUMS} ({digest}): the file was altered"
            )
    extra = [name for name in _bundle_files(directory) if name not in listed]
    if extra:
        raise BundleError(f"{extra[0]}: not listed in {SUMS}: added after the bundle was written")
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
        recorded_files: dict[str, str] = dict(manifest["files"])
        records: list[dict[str, Any]] = list(manifest["records"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"{MANIFEST}: unreadable or without its file list: {exc}") from exc
    for name, digest in sorted(recorded_files.items()):
        if listed.get(name) != digest:
            raise BundleError(
                f"{name}: {MANIFEST} records sha256 {digest}, {SUMS} "
                f"{listed.get(name, '(nothing)')}: the bundle was edited"
            )
    for record in records:
        recorded = str(record.get("sha256", ""))
        if "copy_sha256" in record:
            path = directory / EVIDENCE / str(record["copy"])
            actual = sha256_file(path)
        elif "copy_tree_sha256" in record:
            path = directory / EVIDENCE / str(record["copy_dir"])
            actual = sha256_path(path)
        else:
            continue
        if actual != recorded:
            raise BundleError(
                f"{path.relative_to(directory).as_posix()}: content hashes to {actual}, not to "
                f"the MLMD record of {record.get('type')} ({recorded})"
            )
    return {"run_id": manifest.get("run_id", ""), "files": len(listed)}
