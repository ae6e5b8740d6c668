"""The per-run evidence bundle maps a real run's MLMD records to AI Act articles: a `kfp.local`
run, whose stage output files in the pipeline root have no extension."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from aiact.bundle import ARTICLES, KNOWN_SUFFIXES, verify_bundle, write_bundle
from aiact.hashing import sha256_file
from aiact.lineage import LineageStore
from pipelines.local_run import LocalRunConfig, LocalRunResult


def test_bundle_of_a_deployed_run_covers_every_article(
    tmp_path: Path, clean_run: tuple[LocalRunConfig, LocalRunResult]
) -> None:
    config, result = clean_run
    bundle = tmp_path / "bundle"
    manifest = write_bundle(LineageStore.connect(config.metadata_uri), result.run_id, bundle)
    assert json.loads((bundle / "manifest.json").read_text()) == manifest
    assert set(manifest["articles"]) == set(ARTICLES)
    for article, content in manifest["articles"].items():
        assert content["evidence"] and content["missing"] == [], article
    assert manifest["run"]["pipeline_spec_sha256"] == result.pipeline_spec_sha256
    assert manifest["custody"]["verified"] is True
    chain = [e for e in manifest["executions"] if not e["stage"].endswith("_verdict")]
    assert [e["state"] for e in chain] == ["COMPLETE"] * 8
    assert "failed" not in {e["verdict"] for e in manifest["executions"]}
    assert "breached" not in {e["verdict"] for e in manifest["executions"]}
    [approval] = [
        e for e in manifest["articles"]["Art. 14"]["evidence"] if e["type"] == "aiact.Approval"
    ]
    assert approval["properties"]["approver"] == "demo:dana"
    for entry in (e for c in manifest["articles"].values() for e in c["evidence"]):
        if "copy_sha256" in entry:
            assert entry["copy_sha256"] == entry["sha256"]
            assert sha256_file(bundle / "evidence" / entry["copy"]) == entry["sha256"]
    # KFP's output files carry no extension; every copy gets one, JSON reports `.json`.
    copies = [p for p in (bundle / "evidence").iterdir() if p.is_file()]
    assert copies and all(p.suffix in KNOWN_SUFFIXES for p in copies), [p.name for p in copies]
    for entry in manifest["records"]:
        if entry["type"].endswith("Report") and "copy" in entry:
            assert entry["copy"].endswith(".json") and entry["view"].endswith(".html")
    checked = subprocess.run(
        ["sha256sum", "--check", "--quiet", "SHA256SUMS"], cwd=bundle, capture_output=True
    )
    assert checked.returncode == 0, checked.stdout
    assert verify_bundle(bundle)["run_id"] == result.run_id
