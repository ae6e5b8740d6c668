"""Gate policy: declared thresholds, the checks made against them, and the failure they raise."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from aiact.hashing import sha256_json

DEFAULT_POLICY = "gates.yaml"


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
    """Read a gate policy file; the suite's default policy when no path is given."""
    if path is None:
        text = resources.files("aiact.policies").joinpath(DEFAULT_POLICY).read_text()
    else:
        text = path.read_text()
    policy = yaml.safe_load(text)
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
