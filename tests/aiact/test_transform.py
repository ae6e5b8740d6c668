"""The fitted transform survives a save/load round trip with its column order intact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aiact.refdata import generate_credit_data
from aiact.specs import load_feature_spec
from aiact.transform import FittedTransform, fit_transform


def test_round_trip_keeps_column_order_and_output(tmp_path: Path) -> None:
    frame = generate_credit_data(500, seed=2)
    fitted = fit_transform(frame, load_feature_spec("credit"))
    fitted.save(tmp_path / "transform.json")
    loaded = FittedTransform.load(tmp_path / "transform.json")
    assert loaded.feature_names == fitted.feature_names
    assert list(loaded.numeric) == [f.name for f in load_feature_spec("credit").numeric]
    np.testing.assert_array_equal(loaded.apply(frame), fitted.apply(frame))


def test_inconsistent_transform_is_refused(tmp_path: Path) -> None:
    raw = fit_transform(generate_credit_data(200, seed=2), load_feature_spec("credit")).to_dict()
    raw["feature_names"] = raw["feature_names"][1:]
    with pytest.raises(ValueError, match="feature_names disagree"):
        FittedTransform.from_dict(raw)
