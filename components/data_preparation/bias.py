"""Examination of the training data for possible biases (AI Act Art. 10(2)(f)).

Per protected attribute, and per intersection of two protected attributes, every group's row
count, share of the rows and favourable-label rate (the share of its labelled rows whose label
equals the favourable value), checked against the policy section ``data_quality.bias``:

- ``favourable_rate_ratio[a]``: lowest / highest group favourable rate, at least
  ``min_favourable_rate_ratio``;
- ``favourable_rate_difference[a]``: highest - lowest group favourable rate, at most
  ``max_favourable_rate_difference``;
- ``min_group_share[a×b]`` (intersections only; the gate checks single groups' shares already):
  the smallest intersection cell's share of the rows, at least ``min_intersection_share``.

A group with fewer than ``min_group_rows`` rows is reported as "insufficient data" in the
evidence, excluded from the ratio and the difference, and named in those checks' detail; with
fewer than two groups left the ratio and difference checks fail ("insufficient data"), as bias
that cannot be examined is not shown absent. Missing attribute values form their own group,
``(missing)``; rows with a missing label count in the group's rows but not in its rate.

Thresholds may be given per attribute (``thresholds[attribute]``) or per intersection
(``thresholds["a×b"]``, either order); keys not given there come from the top level. An
intersection without a block of its own takes, key by key, the looser of its two attributes'
limits: an intersection inherits the differences of both attributes.

Usage, in the data-preparation gate::

    from components.data_preparation.bias import DEFAULT_BIAS_THRESHOLDS, examine_bias

    bias_checks, bias_evidence = examine_bias(
        frame,
        label="creditworthy",
        favourable=1,
        protected={"sex": ["female", "male"], "age_band": ["18-25", "26-40", "41-60", "61+"]},
        thresholds=policy["data_quality"].get("bias", DEFAULT_BIAS_THRESHOLDS),
    )
    checks += bias_checks
    evidence["bias"] = bias_evidence

The matching ``policy.yaml`` section is DEFAULT_BIAS_THRESHOLDS written as YAML under
``data_quality: bias:``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from aiact.policy import Check, at_least, at_most, must_hold

INTERSECTION = "×"
MISSING_GROUP = "(missing)"
INSUFFICIENT = "insufficient data"
RATE_KEYS = ("min_favourable_rate_ratio", "max_favourable_rate_difference")
KEYS = (*RATE_KEYS, "min_intersection_share", "min_group_rows")

# Calibrated on generate_credit_data(5000, seed=s, label_bias=b), s = 1..6, b = 0, 0.1, ..., 0.7
# ("clean" = label_bias 0). The margins over the clean values allow for sampling noise down to
# the gate's min_rows (1000 rows: the standard error of a sex rate difference is ~0.03 there;
# of 100 clean 1000-row datasets, seeds 0-99, one (seed 4) fails the sex checks, none another).
DEFAULT_BIAS_THRESHOLDS: dict[str, Any] = {
    # sex (and any attribute without its own block). Clean ratio 0.987-0.995, difference
    # 0.003-0.009 (seeds 0-39: >= 0.959, <= 0.027). Label bias 0.1 gives ratio 0.873-0.914
    # and difference 0.056-0.085 (the ratio fires on seeds 2, 4, 5, 6, the difference on 4
    # and 6); from label bias 0.2 (ratio 0.774-0.808, difference 0.125-0.150) both fire on
    # every seed, and keep firing up to 0.7.
    "min_favourable_rate_ratio": 0.90,
    "max_favourable_rate_difference": 0.07,
    # Smallest sex×age_band cell (female×61+): clean 0.041-0.049 (1000 rows: >= 0.032).
    "min_intersection_share": 0.02,
    # Below this a group's favourable rate is too noisy to compare (standard error ~0.09).
    "min_group_rows": 30,
    "age_band": {
        # Credit history and employment years grow with age, so favourable rates differ by age
        # band even on unbiased data (as for the evaluation's age_band limits). Clean ratio
        # 0.738-0.780, difference 0.160-0.188 (1000 rows, seeds 0-39: >= 0.649, <= 0.267; drift 1.0:
        # >= 0.543). Label bias does not move it (ratio >= 0.671 up to 0.7): the wide limit
        # catches an age band with a collapsed favourable rate, not sex bias.
        "min_favourable_rate_ratio": 0.50,
        "max_favourable_rate_difference": 0.35,
    },
    "sex×age_band": {
        # Eight cells, the smallest of 206-244 rows (1000 rows: 28-50). Clean ratio
        # 0.688-0.757, difference 0.175-0.236 (100 clean 1000-row datasets: >= 0.48, <= 0.43).
        # Label bias 0.5 gives ratio 0.331-0.391: the ratio fires on every seed from 0.5, the
        # difference (0.487-0.528 at 0.6) from 0.6.
        "min_favourable_rate_ratio": 0.40,
        "max_favourable_rate_difference": 0.45,
    },
}


def _json_scalar(value: object) -> Any:
    """A label value as JSON can hold it (numpy scalars unwrapped)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _resolve(thresholds: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The limits for one attribute: its own block over the top-level keys."""
    block = thresholds.get(name, thresholds)
    if not isinstance(block, Mapping):
        raise ValueError(f"data_quality.bias.{name} must be a mapping, got {block!r}")
    resolved = {key: thresholds[key] for key in KEYS if key in thresholds}
    resolved.update({key: block[key] for key in KEYS if key in block})
    missing = [key for key in KEYS if key not in resolved]
    if missing:
        raise ValueError(f"data_quality.bias declares no {', '.join(missing)} (for {name})")
    return resolved


def _resolve_intersection(thresholds: Mapping[str, Any], first: str, second: str) -> dict[str, Any]:
    """An intersection's own block if declared (either order), else the looser of its
    attributes' limits."""
    for name in (f"{first}{INTERSECTION}{second}", f"{second}{INTERSECTION}{first}"):
        if name in thresholds:
            return _resolve(thresholds, name)
    a, b = _resolve(thresholds, first), _resolve(thresholds, second)
    resolved = _resolve(thresholds, f"{first}{INTERSECTION}{second}")
    resolved["min_favourable_rate_ratio"] = min(
        a["min_favourable_rate_ratio"], b["min_favourable_rate_ratio"]
    )
    resolved["max_favourable_rate_difference"] = max(
        a["max_favourable_rate_difference"], b["max_favourable_rate_difference"]
    )
    return resolved


Counts = Mapping[str, Sequence[int]]  # group -> (rows, labelled rows, favourable rows)


def group_counts(
    keys: pd.Series, labelled: pd.Series, favourable: pd.Series
) -> dict[str, list[int]]:
    """Rows, labelled rows and favourable rows of every group key found."""
    frame = pd.DataFrame(
        {"k": keys.to_numpy(), "l": labelled.to_numpy(), "f": favourable.to_numpy()}
    )
    grouped = frame.groupby("k", sort=False).agg(n=("l", "size"), l=("l", "sum"), f=("f", "sum"))
    return {
        str(k): [int(v) for v in row]
        for k, row in zip(grouped.index, grouped.to_numpy(), strict=True)
    }


def _groups_of(counts: Counts, declared: Sequence[str]) -> list[str]:
    """Every group: declared first, then any other value found, then (missing)."""
    names = [str(v) for v in declared]
    found = sorted(set(counts) - set(names) - {MISSING_GROUP})
    return names + found + ([MISSING_GROUP] if MISSING_GROUP in counts else [])


def _group_table(
    counts: Counts, groups: list[str], total: int, min_rows: int
) -> dict[str, dict[str, Any]]:
    """Rows, share and favourable rate of every group (zero-row groups included)."""
    table: dict[str, dict[str, Any]] = {}
    for group in groups:
        n, n_labelled, n_favourable = (int(v) for v in counts.get(group, (0, 0, 0)))
        sufficient = n_labelled >= min_rows
        table[group] = {
            "rows": n,
            "share": round(n / total, 6) if total else 0.0,
            "labelled_rows": n_labelled,
            "favourable_rows": n_favourable,
            "favourable_rate": round(n_favourable / n_labelled, 6) if sufficient else None,
            "status": "ok" if sufficient else f"{INSUFFICIENT} ({n_labelled} < {min_rows} rows)",
        }
    return table


def _rate_checks(
    name: str, table: dict[str, dict[str, Any]], limits: Mapping[str, Any]
) -> tuple[list[Check], dict[str, Any]]:
    """Ratio and difference of the favourable rates of the groups with enough rows."""
    rates = {
        g: row["favourable_rate"] for g, row in table.items() if row["favourable_rate"] is not None
    }
    excluded = [g for g in table if table[g]["favourable_rate"] is None]
    note = f"; excluded ({INSUFFICIENT}): {', '.join(excluded)}" if excluded else ""
    ratio_name, difference_name = (
        f"favourable_rate_ratio[{name}]",
        f"favourable_rate_difference[{name}]",
    )
    summary: dict[str, Any] = {"compared_groups": sorted(rates), "excluded_groups": excluded}
    if len(rates) < 2:
        detail = (
            f"{INSUFFICIENT}: {len(rates)} group(s) with >= {limits['min_group_rows']} labelled "
            f"rows, need 2{note}"
        )
        summary.update(favourable_rate_ratio=INSUFFICIENT, favourable_rate_difference=INSUFFICIENT)
        return [must_hold(ratio_name, False, detail), must_hold(difference_name, False, detail)], (
            summary
        )
    low = min(rates, key=lambda g: rates[g])
    high = max(rates, key=lambda g: rates[g])
    ratio = rates[low] / rates[high] if rates[high] > 0 else 1.0
    difference = rates[high] - rates[low]
    detail = f"lowest {name}={low} {rates[low]:.3f}, highest {name}={high} {rates[high]:.3f}{note}"
    summary.update(
        favourable_rate_ratio=round(ratio, 6),
        favourable_rate_difference=round(difference, 6),
        lowest_group=low,
        highest_group=high,
    )
    checks = [
        at_least(ratio_name, round(ratio, 6), limits["min_favourable_rate_ratio"], detail),
        at_most(
            difference_name, round(difference, 6), limits["max_favourable_rate_difference"], detail
        ),
    ]
    return checks, summary


def _share_check(
    name: str, table: dict[str, dict[str, Any]], limit: float
) -> tuple[Check, list[str]]:
    """The smallest intersection cell against min_intersection_share, naming every cell below."""
    if not table:
        return must_hold(f"min_group_share[{name}]", False, "no groups to examine"), []
    below = [g for g, row in table.items() if row["share"] < limit]
    smallest = min(table, key=lambda g: table[g]["share"])
    cell = table[smallest]
    detail = f"smallest {name}={smallest}: {cell['share']:.2%} ({cell['rows']} rows)"
    if below:
        detail += f"; below {limit:.2%}: {', '.join(below)}"
    return at_least(f"min_group_share[{name}]", cell["share"], limit, detail), below


def examine_bias(
    frame: pd.DataFrame,
    *,
    label: str,
    favourable: object,
    protected: Mapping[str, Sequence[str]],
    thresholds: Mapping[str, Any],
) -> tuple[list[Check], dict[str, Any]]:
    """Favourable-label rates and shares by protected group and pairwise intersection.

    Args:
        frame: The dataset, one row per record.
        label: The label column.
        favourable: The label value of the favourable outcome (compared with ``==``, so text
            labels such as ``"good"`` work).
        protected: Protected attribute -> its declared groups (declared groups with no rows
            are reported with 0 rows; values found but not declared are reported too).
        thresholds: The policy section ``data_quality.bias`` (see DEFAULT_BIAS_THRESHOLDS):

            - ``min_favourable_rate_ratio``: lowest group favourable rate divided by the
              highest, at least this (per attribute / intersection).
            - ``max_favourable_rate_difference``: highest minus lowest group favourable rate,
              at most this.
            - ``min_intersection_share``: each cell of each intersection of two protected
              attributes holds at least this share of the rows.
            - ``min_group_rows``: a group with fewer labelled rows is "insufficient data":
              reported, named, and excluded from the ratio and the difference.

            Any key may be overridden by a block under the attribute's name, or ``a×b`` for an
            intersection.

    Returns:
        The checks (``favourable_rate_ratio[a]``, ``favourable_rate_difference[a]``, the same
        for ``a×b``, ``min_group_share[a×b]``) and JSON-ready evidence: per attribute and per
        intersection the group table (rows, share, labelled and favourable rows, favourable
        rate or None, status), ratio, difference, compared and excluded groups, the limits
        applied.

    Raises:
        ValueError: A threshold is not declared.
    """
    if label not in frame.columns:
        return examine_bias_counts(
            {},
            rows=len(frame),
            label=label,
            favourable=favourable,
            protected=protected,
            thresholds=thresholds,
            label_present=False,
        )
    labelled = frame[label].notna()
    is_favourable = labelled & (frame[label] == favourable)
    keys = {
        a: frame[a].map(lambda v: MISSING_GROUP if pd.isna(v) else str(v))
        for a in protected
        if a in frame.columns
    }
    counts = {a: group_counts(k, labelled, is_favourable) for a, k in keys.items()}
    for first, second in itertools.combinations(keys, 2):
        cells = keys[first] + INTERSECTION + keys[second]
        counts[f"{first}{INTERSECTION}{second}"] = group_counts(cells, labelled, is_favourable)
    return examine_bias_counts(
        counts,
        rows=len(frame),
        label=label,
        favourable=favourable,
        protected=protected,
        thresholds=thresholds,
    )


def examine_bias_counts(
    counts: Mapping[str, Counts],
    *,
    rows: int,
    label: str,
    favourable: object,
    protected: Mapping[str, Sequence[str]],
    thresholds: Mapping[str, Any],
    label_present: bool = True,
) -> tuple[list[Check], dict[str, Any]]:
    """examine_bias from group counts: `counts[a]` and `counts["a×b"]` (a, b in the order of
    `protected`) map each group (cell "x×y") to its rows, labelled rows and favourable rows; an
    attribute absent from `counts` is absent from the data. This is what the data gate's
    mergeable tally provides on both its in-memory and its Beam path."""
    evidence: dict[str, Any] = {
        "label": label,
        "favourable": _json_scalar(favourable),
        "rows": rows,
        "attributes": {},
        "intersections": {},
    }
    if not label_present:
        return [must_hold(f"bias_examined[{label}]", False, f"label column {label!r} is absent")], (
            evidence
        )
    checks: list[Check] = []
    present = [a for a in protected if a in counts]
    if present:
        column = counts[present[0]].values()
        n_labelled = sum(int(v[1]) for v in column)
        n_favourable = sum(int(v[2]) for v in column)
        if n_labelled and not n_favourable:
            checks.append(
                must_hold(
                    f"favourable_label[{label}]",
                    False,
                    f"favourable value {favourable!r} never occurs in column {label!r}",
                )
            )
    groups: dict[str, list[str]] = {}
    for attribute, declared in protected.items():
        if attribute not in counts:
            checks.append(
                must_hold(f"bias_examined[{attribute}]", False, f"column {attribute!r} is absent")
            )
            continue
        limits = _resolve(thresholds, attribute)
        groups[attribute] = _groups_of(counts[attribute], declared)
        table = _group_table(counts[attribute], groups[attribute], rows, limits["min_group_rows"])
        rate_checks, summary = _rate_checks(attribute, table, limits)
        checks += rate_checks
        evidence["attributes"][attribute] = {"groups": table, **summary, "limits": limits}
    for first, second in itertools.combinations(groups, 2):
        name = f"{first}{INTERSECTION}{second}"
        limits = _resolve_intersection(thresholds, first, second)
        cells = [
            f"{a}{INTERSECTION}{b}" for a, b in itertools.product(groups[first], groups[second])
        ]
        table = _group_table(counts.get(name, {}), cells, rows, limits["min_group_rows"])
        share_check, below = _share_check(name, table, limits["min_intersection_share"])
        rate_checks, summary = _rate_checks(name, table, limits)
        checks += [share_check, *rate_checks]
        evidence["intersections"][name] = {
            "groups": table,
            **summary,
            "below_min_share": below,
            "limits": limits,
        }
    return checks, evidence
