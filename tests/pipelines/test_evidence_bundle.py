"""The per-run evidence bundle maps a real run's MLMD records to AI Act articles."""

from __future__ import annotations

import json
from pathlib import Path

from aiact.bundle import ARTICLES, write_bundle
from aiact.hashing import sha256_file
from aiact.lineage import LineageStore
from pipelines.local_run import LocalRunConfig, LocalRunResult


def test_bundle_of_a_deployed_run_covers_every_article(
    tmp_path: Path, clean_run: tuple[LocalRunConfig, LocalRunResult]
) -> None:
    config, result = clean_run
    manifest = write_bundle(LineageStore.connect(config.metadata_uri), result.run_id, tmp_path)
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest
    assert set(manifest["articles"]) == set(ARTICLES)
    for article, content in manifest["articles"].items():
        assert content["evidence"] and content["missing"] == [], article
    assert manifest["run"]["pipeline_spec_sha256"] == result.pipeline_spec_sha256
    assert [e["state"] for e in manifest["executions"]] == ["COMPLETE"] * 8
    [approval] = manifest["articles"]["Art. 14"]["evidence"]
    assert approval["properties"]["approver"] == "demo:dana"
    for entry in (e for c in manifest["articles"].values() for e in c["evidence"]):
        if "copy_sha256" in entry:
            assert entry["copy_sha256"] == entry["sha256"]
            assert sha256_file(tmp_path / "evidence" / entry["copy"]) == entry["sha256"]
