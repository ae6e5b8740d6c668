"""Draft a TFDV schema for a use case: inferred types, tightened with the declared feature
ranges and vocabularies. The draft is reviewed and committed as the declared schema."""

from __future__ import annotations

from typing import Any

import pandas as pd

from aiact.specs import FeatureSpec


def draft_schema(
    frame: pd.DataFrame,
    spec: FeatureSpec,
    categories: dict[str, tuple[str, ...]],
    label_values: tuple[Any, ...] = (0, 1),
) -> Any:
    """Infer a schema from a clean sample and declare every range and vocabulary on it (the
    label's declared values too: an integer range, or a string domain for a text label)."""
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import schema_pb2

    statistics = tfdv.generate_statistics_from_dataframe(frame.reset_index(drop=True))
    schema = tfdv.infer_schema(statistics, infer_feature_shape=False)
    ranges = {f.name: (f.low, f.high) for f in spec.numeric}
    for feature in schema.feature:
        # Missing values are governed by the policy's max_missing_rate, not by the schema.
        feature.presence.min_fraction = 0.0
        if feature.name in ranges:
            low, high = ranges[feature.name]
            if feature.type == schema_pb2.INT:
                feature.int_domain.min, feature.int_domain.max = int(low), int(high)
            else:
                feature.float_domain.min, feature.float_domain.max = low, high
        elif feature.name == spec.label and feature.type == schema_pb2.INT:
            numbers = [int(v) for v in label_values]
            feature.int_domain.min, feature.int_domain.max = min(numbers), max(numbers)
            feature.int_domain.is_categorical = True
        elif feature.name == spec.label:
            categories = {**categories, spec.label: tuple(str(v) for v in label_values)}
    for name, values in categories.items():
        domain = tfdv.get_domain(schema, name)
        del domain.value[:]
        domain.value.extend(values)
    return schema
