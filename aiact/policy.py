"""Gate policy: declared thresholds, the checks made against them, and the failure they raise."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aiact.hashing import sha256_json

DEFAULT_POLICY = "policy.yaml"
# A gate's verdict, recorded on its evidence execution (property `verdict`) and by the verdict
# task that halts the run on a breach.
PASSED = "passed"
BREACHED = "breached"


@dataclass(frozen=True)
class Check:
    """One threshold compared with one measured value."""

    name: str
    value: float | int | str
    limit: float | int | str
    comparison: str
    passed: bool
    detail: str = ""

    def describe(self) -> str:
        """A one-line statement a reviewer can read without the report."""
        verdict = "ok" if self.passed else "BREACH"
        text = (
            f"{self.name}={_fmt(self.value)} (limit {self.comparison} {_fmt(self.limit)}) {verdict}"
        )
        return f"{text}: {self.detail}" if self.detail else text


def _fmt(value: float | int | str) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def at_most(name: str, value: float, limit: float, detail: str = "") -> Check:
    """Passes when value <= limit."""
    return Check(name, value, limit, "<=", bool(value <= limit), detail)


def at_least(name: str, value: float, limit: float, detail: str = "") -> Check:
    """Passes when value >= limit."""
    return Check(name, value, limit, ">=", bool(value >= limit), detail)


def must_hold(name: str, holds: bool, detail: str) -> Check:
    """A rule with no number: passes when `holds`."""
    return Check(name, str(holds).lower(), "true", "==", holds, detail)


@dataclass(frozen=True)
class GateResult:
    """The verdict of one gate: every check made, passed or not."""

    gate: str
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        """True when every check passed."""
        return all(check.passed for check in self.checks)

    @property
    def breaches(self) -> tuple[Check, ...]:
        """The checks that failed."""
        return tuple(check for check in self.checks if not check.passed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for reports and lineage."""
        return {
            "gate": self.gate,
            "passed": self.passed,
            "checks": [asdict(check) for check in self.checks],
        }

    @property
    def verdict(self) -> str:
        """`passed` or `breached`: what the gate's evidence execution records as its verdict."""
        return PASSED if self.passed else BREACHED

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateResult:
        """The result a report recorded (`to_dict`'s form)."""
        checks = tuple(Check(**dict(check)) for check in data.get("checks") or ())
        return cls(gate=str(data.get("gate", "")), checks=checks)

    def raise_if_failed(self) -> None:
        """Halt the pipeline: raise GateFailed naming every breached check."""
        if not self.passed:
            raise GateFailed(self)


class GateFailed(RuntimeError):
    """A compliance gate breached its declared thresholds; the pipeline must stop here."""

    def __init__(self, result: GateResult) -> None:
        self.result = result
        lines = "; ".join(check.describe() for check in result.breaches)
        super().__init__(f"gate '{result.gate}' failed: {lines}")


def load_policy(path: Path | None = None) -> dict[str, Any]:
    """Read a gate policy file; the bundled credit use case's policy.yaml when no path is
    given."""
    if path is None:
        from aiact.usecase import BUNDLED_USE_CASE

        path = BUNDLED_USE_CASE / DEFAULT_POLICY
    import yaml

    policy = yaml.safe_load(path.read_text())
    if not isinstance(policy, dict) or "version" not in policy:
        raise ValueError(f"gate policy {path or DEFAULT_POLICY} must be a mapping with 'version'")
    return policy


def policy_sha256(policy: Mapping[str, Any]) -> str:
    """Hash of a policy's canonical JSON: the identity recorded with every gate."""
    return sha256_json(dict(policy))


def section(policy: Mapping[str, Any], name: str) -> dict[str, Any]:
    """One gate's thresholds; a clear error when the policy does not declare them."""
    thresholds = policy.get(name)
    if not isinstance(thresholds, dict):
        raise ValueError(f"gate policy declares no '{name}' section")
    return thresholds


def _floor_value(value: Any) -> str:
    """A policy or floor value as a reader would write it in the YAML."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Mapping):
        return "a section"
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_floor(policy: Mapping[str, Any], floor: Mapping[str, Any]) -> list[str]:
    """Where a gate policy is looser than a platform's floor: one message per violation.

    The floor mirrors the policy's layout; nested sections are compared recursively. A key
    named `min_*` must be at least the floor's value, `max_*` at most, a `require_*` must be
    true where the floor's is true, and any other key must equal the floor's. A floor key the
    policy lacks is a violation: removing a check loosens it.

    Args:
        policy: The gate policy (load_policy).
        floor: The platform's policy floor.

    Returns:
        The violations, e.g. "evaluation.fairness.sex.max_equalized_odds_difference is 0.3,
        looser than the platform floor 0.15"; empty when the policy meets the floor.

    Fairness limits are per protected attribute, and a use case declares its own attributes:
    the floor's `evaluation.fairness.default` binds every attribute the policy names (and its
    `default`); a floor entry for a named attribute binds the policy's entry for it, else the
    policy's `default`, and is skipped when the policy has neither (the attribute is not one of
    the use case's: aiact.usecase.validate_policy requires limits for every declared one).
    """
    return _floor_violations(policy, _fairness_floor(policy, floor), "")


def floor_differences(policy: Mapping[str, Any], floor: Mapping[str, Any]) -> list[str]:
    """Where a policy that meets the floor differs from it (stricter limits), one line each,
    e.g. "evaluation.min_accuracy 0.75 (platform floor 0.7)": what an approver is shown.
    Keys the floor does not set are not listed (the policy alone decides them)."""

    def walk(values: Mapping[str, Any], limits: Mapping[str, Any], path: str) -> list[str]:
        lines = []
        for key, limit in limits.items():
            where = f"{path}{key}"
            value = values.get(key) if isinstance(values, Mapping) else None
            if isinstance(limit, Mapping):
                lines += walk(value if isinstance(value, Mapping) else {}, limit, f"{where}.")
            elif value != limit:
                lines.append(f"{where} {value} (platform floor {limit})")
        return lines

    return walk(policy, _fairness_floor(policy, floor), "")


def _strictest(first: Mapping[str, Any], second: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(first)
    for key, limit in second.items():
        if key not in merged or not (_is_number(limit) and _is_number(merged[key])):
            merged.setdefault(key, limit)
        elif key.startswith("min_"):
            merged[key] = max(merged[key], limit)
        elif key.startswith("max_"):
            merged[key] = min(merged[key], limit)
    return merged


def _fairness_floor(policy: Mapping[str, Any], floor: Mapping[str, Any]) -> Mapping[str, Any]:
    """The floor with its fairness section mapped onto the attributes the policy names."""
    evaluation_floor = floor.get("evaluation")
    evaluation = policy.get("evaluation")
    if not isinstance(evaluation_floor, Mapping) or not isinstance(evaluation, Mapping):
        return floor
    fairness_floor, fairness = evaluation_floor.get("fairness"), evaluation.get("fairness")
    if not isinstance(fairness_floor, Mapping) or not isinstance(fairness, Mapping):
        return floor
    mapped: dict[str, Any] = {}
    for attribute, limits in fairness_floor.items():
        if not isinstance(limits, Mapping):
            mapped[attribute] = limits
            continue
        if attribute == "default":
            targets = list(fairness)
        elif attribute in fairness:
            targets = [attribute]
        elif "default" in fairness:
            targets = ["default"]
        else:
            continue
        for target in targets:
            mapped[target] = _strictest(mapped.get(target, {}), limits)
    return {**floor, "evaluation": {**evaluation_floor, "fairness": mapped}}


def _floor_violations(policy: Any, floor: Mapping[str, Any], path: str) -> list[str]:
    violations: list[str] = []
    for key, limit in floor.items():
        name = f"{path}{key}"
        if not isinstance(policy, Mapping) or key not in policy:
            violations.append(
                f"{name} is missing, but the platform floor requires {_floor_value(limit)}"
            )
            continue
        value = policy[key]
        if isinstance(limit, Mapping):
            if isinstance(value, Mapping):
                violations.extend(_floor_violations(value, limit, f"{name}."))
            else:
                violations.append(
                    f"{name} is {_floor_value(value)}, but the platform floor requires a section"
                )
            continue
        looser = f"{name} is {_floor_value(value)}, looser than the platform floor"
        if key.startswith(("min_", "max_")):
            if not _is_number(limit):
                violations.append(
                    f"{name}: the platform floor {_floor_value(limit)} is not a number"
                )
            elif not _is_number(value):
                violations.append(
                    f"{name} is {_floor_value(value)}, not a number "
                    f"(platform floor {_floor_value(limit)})"
                )
            # `not >=` / `not <=` so that NaN counts as looser.
            elif not (value >= limit if key.startswith("min_") else value <= limit):
                violations.append(f"{looser} {_floor_value(limit)}")
        elif key.startswith("require_"):
            if not isinstance(value, bool):
                violations.append(
                    f"{name} is {_floor_value(value)}, not true or false "
                    f"(platform floor {_floor_value(limit)})"
                )
            elif limit is True and value is not True:
                violations.append(f"{looser} true")
        elif value != limit or isinstance(value, bool) != isinstance(limit, bool):
            violations.append(
                f"{name} is {_floor_value(value)}, but the platform floor requires "
                f"{_floor_value(limit)}"
            )
    return violations
