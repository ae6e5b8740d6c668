"""Bias examination at the data gate (Art. 10(2)(f)): favourable-label rates by protected group
and intersection, on hand-built frames and on a label-bias sweep of the reference data."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from aiact.policy import Check
from aiact.refdata import AGE_BANDS, LABEL_COLUMN, SEXES, generate_credit_data
from components.data_preparation.bias import DEFAULT_BIAS_THRESHOLDS, examine_bias

PROTECTED = {"sex": list(SEXES), "age_band": list(AGE_BANDS)}
# The level of label bias from which favourable_rate_ratio[sex] fails on seed 1 (the module's
# calibration comment: every seed 1-6 fails from 0.2, some already at 0.1; seed 1 passes 0.1).
FIRST_FAILING_BIAS = 0.2


def _examine(frame: pd.DataFrame, **kwargs: object) -> tuple[dict[str, Check], dict]:
    arguments: dict = {
        "label": LABEL_COLUMN,
        "favourable": 1,
        "protected": PROTECTED,
        "thresholds": DEFAULT_BIAS_THRESHOLDS,
        **kwargs,
    }
    checks, evidence = examine_bias(frame, **arguments)
    json.dumps(evidence)  # evidence is JSON-ready
    return {c.name: c for c in checks}, evidence


def _frame(groups: dict[tuple[str, str], tuple[int, int]]) -> pd.DataFrame:
    """(sex, age_band) -> (rows, favourable rows)."""
    parts = [
        pd.DataFrame({"sex": sex, "age_band": band, LABEL_COLUMN: [1] * good + [0] * (rows - good)})
        for (sex, band), (rows, good) in groups.items()
    ]
    return pd.concat(parts, ignore_index=True)


def _balanced(rate_female: float, rate_male: float, rows: int = 200) -> pd.DataFrame:
    return _frame(
        {
            (sex, band): (rows, round(rows * rate))
            for sex, rate in (("female", rate_female), ("male", rate_male))
            for band in AGE_BANDS
        }
    )


def test_women_with_half_the_mens_favourable_rate_fail() -> None:
    checks, evidence = _examine(_balanced(0.35, 0.70))
    ratio = checks["favourable_rate_ratio[sex]"]
    assert not ratio.passed
    assert ratio.value == pytest.approx(0.5)
    assert "lowest sex=female 0.350" in ratio.detail
    assert not checks["favourable_rate_difference[sex]"].passed
    sex = evidence["attributes"]["sex"]
    assert sex["groups"]["female"] == {
        "rows": 800,
        "share": 0.5,
        "labelled_rows": 800,
        "favourable_rows": 280,
        "favourable_rate": 0.35,
        "status": "ok",
    }
    # Equal rates pass the same checks.
    fair, _ = _examine(_balanced(0.70, 0.70))
    assert all(c.passed for c in fair.values()), [c.describe() for c in fair.values()]


def test_clean_reference_data_passes_every_check() -> None:
    for seed in (1, 4):
        checks, evidence = _examine(generate_credit_data(5000, seed=seed))
        assert all(c.passed for c in checks.values()), [c.describe() for c in checks.values()]
        assert set(checks) == {
            "favourable_rate_ratio[sex]",
            "favourable_rate_difference[sex]",
            "favourable_rate_ratio[age_band]",
            "favourable_rate_difference[age_band]",
            "min_group_share[sex×age_band]",
            "favourable_rate_ratio[sex×age_band]",
            "favourable_rate_difference[sex×age_band]",
        }
        cells = evidence["intersections"]["sex×age_band"]["groups"]
        assert len(cells) == 8 and sum(c["rows"] for c in cells.values()) == 5000
        assert evidence["attributes"]["age_band"]["limits"]["min_favourable_rate_ratio"] == 0.5


def test_label_bias_sweep_fires_from_a_stated_level_and_keeps_firing() -> None:
    levels = [round(0.1 * i, 1) for i in range(8)]
    ratios, verdicts = [], []
    for bias in levels:
        checks, _ = _examine(generate_credit_data(5000, seed=1, label_bias=bias))
        ratio = checks["favourable_rate_ratio[sex]"]
        ratios.append(float(ratio.value))
        verdicts.append(ratio.passed)
        # The difference check agrees with the ratio on this seed.
        assert checks["favourable_rate_difference[sex]"].passed == ratio.passed
    failing = [level for level, passed in zip(levels, verdicts, strict=True) if not passed]
    assert failing[0] == FIRST_FAILING_BIAS
    assert failing == [level for level in levels if level >= FIRST_FAILING_BIAS]
    assert all(a > b for a, b in itertools.pairwise(ratios)), ratios


def test_intersection_below_its_share_is_named() -> None:
    frame = generate_credit_data(5000, seed=2)
    older_women = frame.index[(frame["sex"] == "female") & (frame["age_band"] == "61+")]
    thinned = frame.drop(older_women[40:])  # 40 of ~220 rows left: 0.8% of the rows
    checks, evidence = _examine(thinned)
    share = checks["min_group_share[sex×age_band]"]
    assert not share.passed
    assert "smallest sex×age_band=female×61+" in share.detail
    assert "below 2.00%: female×61+" in share.detail
    assert evidence["intersections"]["sex×age_band"]["below_min_share"] == ["female×61+"]
    # Each attribute on its own is still represented well enough.
    assert checks["favourable_rate_ratio[sex]"].passed


def test_a_tiny_group_is_insufficient_data_and_excluded_from_the_ratio() -> None:
    groups = {(sex, band): (200, 140) for sex in SEXES for band in AGE_BANDS}
    groups["female", "61+"] = (12, 0)  # would give a ratio of 0 if it were compared
    checks, evidence = _examine(_frame(groups))
    table = evidence["intersections"]["sex×age_band"]
    cell = table["groups"]["female×61+"]
    assert cell["favourable_rate"] is None
    assert cell["status"] == "insufficient data (12 < 30 rows)"
    assert table["excluded_groups"] == ["female×61+"]
    ratio = checks["favourable_rate_ratio[sex×age_band]"]
    assert ratio.passed and ratio.value == 1.0
    assert "excluded (insufficient data): female×61+" in ratio.detail
    # With one group left there is nothing to compare: the check fails, saying why.
    alone = _frame({("female", "18-25"): (500, 300), ("male", "18-25"): (10, 5)})
    checks, evidence = _examine(alone, protected={"sex": list(SEXES)})
    assert not checks["favourable_rate_ratio[sex]"].passed
    assert checks["favourable_rate_ratio[sex]"].detail.startswith("insufficient data: 1 group")
    assert evidence["attributes"]["sex"]["favourable_rate_ratio"] == "insufficient data"


def test_text_labels_with_a_named_favourable_value() -> None:
    frame = _balanced(0.35, 0.70)
    frame[LABEL_COLUMN] = np.where(frame[LABEL_COLUMN] == 1, "good", "bad")
    checks, evidence = _examine(frame, favourable="good")
    assert not checks["favourable_rate_ratio[sex]"].passed
    assert checks["favourable_rate_ratio[sex]"].value == pytest.approx(0.5)
    assert evidence["favourable"] == "good"
    assert evidence["attributes"]["sex"]["groups"]["male"]["favourable_rate"] == 0.7
    # A favourable value that never occurs is a breach, not a ratio of 0/0.
    checks, _ = _examine(frame, favourable="Good")
    assert not checks[f"favourable_label[{LABEL_COLUMN}]"].passed


def test_per_attribute_thresholds_override_the_top_level() -> None:
    frame = _balanced(0.60, 0.70)  # ratio 0.857: fails the default 0.90
    checks, _ = _examine(frame)
    assert not checks["favourable_rate_ratio[sex]"].passed
    thresholds = {**DEFAULT_BIAS_THRESHOLDS, "sex": {"min_favourable_rate_ratio": 0.8}}
    checks, evidence = _examine(frame, thresholds=thresholds)
    assert checks["favourable_rate_ratio[sex]"].passed
    assert evidence["attributes"]["sex"]["limits"]["max_favourable_rate_difference"] == 0.07
    with pytest.raises(ValueError, match="declares no min_group_rows"):
        _examine(frame, thresholds={k: v for k, v in thresholds.items() if k != "min_group_rows"})
