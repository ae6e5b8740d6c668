"""`aiact diff-spec OLD NEW`: a compliance diff of two pipeline specs, gate policies or platform
configurations, for the reviewers of a pull request.

OLD and NEW are both compiled KFP v2 specs (`pipelines/compliance_pipeline.yaml`), both gate
policies (a use case's `policy.yaml`) or both platform configurations (`platform.yaml`, with its
`policy_floor`); the kind is detected from the content.

For specs, a gate is recognised by what it runs: the executor module its component's
command/args import (`components.<stage>.executor`), never by its task name, so a renamed task
is a rename and not a removed gate. Reported: gates added or removed, the order of the gates
(which gate consumes, directly or through other tasks, the outputs of which), caching per task,
images, resources, the wiring of a gate's parameters, and root parameter defaults (with the
thresholds of a non-empty `gate_policy` default).

For policies and floors every threshold is compared: `min_*` higher is tighter, `max_*` lower is
tighter, `require_*` false -> true is tighter, an added threshold is tighter and a removed one
looser; any other key that changes is reported as changed.

Exit status (see `exit_code`): 0 no compliance-relevant change, 1 some, 2 error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SPEC = "spec"
POLICY = "policy"
PLATFORM = "platform"
KIND_TITLES = {
    SPEC: "compiled pipeline spec",
    POLICY: "gate policy",
    PLATFORM: "platform configuration",
}

LOOSENED = "loosened"
TIGHTENED = "tightened"
CHANGED = "changed"
ADDED = "added"
REMOVED = "removed"

EXECUTOR_MODULE = re.compile(r"\bcomponents\.([A-Za-z_][A-Za-z0-9_]*)\.executor\b")
POLICY_SECTIONS = frozenset({"data_quality", "features", "evaluation", "integration", "approval"})
# Root parameters whose default decides how a run is gated, approved or recorded.
COMPLIANCE_PARAMETERS = frozenset(
    {
        "environment",
        "approval_backend",
        "approver_group",
        "approval_timeout_s",
        "demo_approver",
        "ledger_uri",
        "use_case_uri",
    }
)
# Keys without a min_/max_/require_ prefix whose direction is known: +1 = higher is tighter.
KNOWN_DIRECTIONS = {
    "required_approvals": 1,
    "noise_sigma": 1,  # robustness perturbation: less noise tests less
    "missing_rate": 1,
}
ENVIRONMENT_RANK = {"development": 0, "staging": 1, "production": 2}


class SpecDiffError(ValueError):
    """The inputs cannot be compared (unreadable, not a known kind, or of two kinds)."""


@dataclass(frozen=True)
class Change:
    """One difference between OLD and NEW.

    Attributes:
        category: What changed, e.g. "gate removed", "threshold", "caching".
        subject: Where, e.g. "registration" or "evaluation.fairness.sex.min_...".
        old: The old value, rendered ("-" when absent).
        new: The new value, rendered ("-" when absent).
        effect: loosened, tightened, changed, added or removed.
        relevant: Whether the change is compliance-relevant (drives the exit status).
    """

    category: str
    subject: str
    old: str
    new: str
    effect: str
    relevant: bool


@dataclass
class Diff:
    """The changes between two files of one kind."""

    kind: str
    old_path: str
    new_path: str
    changes: list[Change] = field(default_factory=list)

    @property
    def relevant(self) -> list[Change]:
        return [c for c in self.changes if c.relevant]

    @property
    def other(self) -> list[Change]:
        return [c for c in self.changes if not c.relevant]

    @property
    def exit_code(self) -> int:
        return 1 if self.relevant else 0


# --------------------------------------------------------------------------- loading


def _load(path: Path) -> list[Any]:
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as exc:
        raise SpecDiffError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from exc
    if not documents or not isinstance(documents[0], Mapping):
        raise SpecDiffError(f"{path}: not a YAML mapping")
    return documents


def detect_kind(document: Mapping[str, Any]) -> str:
    """spec, policy or platform, from a file's first YAML document."""
    if "root" in document and ("deploymentSpec" in document or "components" in document):
        return SPEC
    if "policy_floor" in document or ("defaults" in document and "namespaces" in document):
        return PLATFORM
    if POLICY_SECTIONS & set(document):
        return POLICY
    raise SpecDiffError(
        "not a compiled KFP v2 spec, a gate policy or a platform configuration "
        f"(top-level keys: {', '.join(sorted(map(str, document))) or 'none'})"
    )


def diff_files(old: Path, new: Path) -> Diff:
    """Compare two files of the same kind."""
    old_docs, new_docs = _load(old), _load(new)
    try:
        old_kind = detect_kind(old_docs[0])
    except SpecDiffError as exc:
        raise SpecDiffError(f"{old}: {exc}") from None
    try:
        new_kind = detect_kind(new_docs[0])
    except SpecDiffError as exc:
        raise SpecDiffError(f"{new}: {exc}") from None
    if old_kind != new_kind:
        raise SpecDiffError(
            f"{old} is a {KIND_TITLES[old_kind]} but {new} is a {KIND_TITLES[new_kind]}"
        )
    diff = Diff(kind=old_kind, old_path=str(old), new_path=str(new))
    if old_kind == SPEC:
        diff.changes = diff_specs(old_docs, new_docs)
    else:
        diff.changes = diff_thresholds(old_docs[0], new_docs[0], "")
    return diff


# --------------------------------------------------------------------------- thresholds


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value if value else "''"
    return json.dumps(value, sort_keys=True)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _direction(key: str) -> int:
    """+1: higher is tighter; -1: lower is tighter; 0: unknown."""
    if key.startswith("min_"):
        return 1
    if key.startswith("max_"):
        return -1
    return KNOWN_DIRECTIONS.get(key, 0)


def _compare(key: str, old: Any, new: Any) -> str:
    if key.startswith("require_") and isinstance(old, bool) and isinstance(new, bool):
        return TIGHTENED if new else LOOSENED
    if key == "environment" and old in ENVIRONMENT_RANK and new in ENVIRONMENT_RANK:
        return TIGHTENED if ENVIRONMENT_RANK[new] > ENVIRONMENT_RANK[old] else LOOSENED
    direction = _direction(key)
    if direction and _is_number(old) and _is_number(new) and old != new:
        return TIGHTENED if (new - old) * direction > 0 else LOOSENED
    return CHANGED


def diff_thresholds(
    old: Mapping[str, Any], new: Mapping[str, Any], prefix: str, *, relevant: bool = True
) -> list[Change]:
    """Every leaf of two nested mappings that differs, classified as a threshold change."""
    changes: list[Change] = []
    for key in sorted(set(old) | set(new), key=str):
        where = f"{prefix}{key}"
        before, after = old.get(key), new.get(key)
        in_old, in_new = key in old, key in new
        if (isinstance(before, Mapping) or isinstance(after, Mapping)) and (
            isinstance(before, Mapping | None) and isinstance(after, Mapping | None)
        ):
            changes += diff_thresholds(before or {}, after or {}, f"{where}.", relevant=relevant)
            continue
        if (
            in_old
            and in_new
            and before == after
            and isinstance(before, bool) == isinstance(after, bool)
        ):
            continue
        if not in_old:
            effect, change = TIGHTENED, ADDED
        elif not in_new:
            effect, change = LOOSENED, REMOVED
        else:
            effect, change = _compare(str(key), before, after), CHANGED
        category = "threshold" if change == CHANGED else f"threshold {change}"
        changes.append(Change(category, where, _fmt(before), _fmt(after), effect, relevant))
    return changes


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class Task:
    """A task of the compiled spec's root DAG, with what it runs."""

    name: str
    stage: str  # the executor module's stage; '' for a task that runs no recognised gate
    executor: str
    image: str
    resources: Mapping[str, Any]
    caching: bool
    producers: frozenset[str]  # tasks whose outputs this one consumes
    parameters: Mapping[str, Any]  # the task's parameter inputs, as wired
    kubernetes: Mapping[str, Any]  # the executor's platforms.kubernetes configuration


def _get(mapping: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(mapping, Mapping):
            return None
        mapping = mapping.get(key)
    return mapping


def _producers(inputs: Any) -> set[str]:
    found: set[str] = set()
    for section, reference in (
        ("artifacts", "taskOutputArtifact"),
        ("parameters", "taskOutputParameter"),
    ):
        for wiring in (_get(inputs, section) or {}).values():
            producer = _get(wiring, reference, "producerTask")
            if isinstance(producer, str):
                found.add(producer)
    return found


def parse_tasks(documents: list[Any]) -> dict[str, Task]:
    """The root DAG's tasks by name."""
    spec = documents[0]
    components = spec.get("components") or {}
    executors = _get(spec, "deploymentSpec", "executors") or {}
    kubernetes: Mapping[str, Any] = {}
    for extra in documents[1:]:
        found = _get(extra, "platforms", "kubernetes", "deploymentSpec", "executors")
        if isinstance(found, Mapping):
            kubernetes = found
    tasks: dict[str, Task] = {}
    for name, task in (_get(spec, "root", "dag", "tasks") or {}).items():
        component = components.get(_get(task, "componentRef", "name")) or {}
        label = str(component.get("executorLabel", ""))
        container = _get(executors, label, "container") or {}
        text = "\n".join(
            str(part)
            for part in [*(container.get("command") or []), *(container.get("args") or [])]
        )
        match = EXECUTOR_MODULE.search(text)
        tasks[str(name)] = Task(
            name=str(name),
            stage=match.group(1) if match else "",
            executor=label,
            image=str(container.get("image", "")),
            resources=container.get("resources") or {},
            caching=bool(_get(task, "cachingOptions", "enableCache")),
            producers=frozenset(_producers(task.get("inputs"))),
            parameters=_get(task, "inputs", "parameters") or {},
            kubernetes=kubernetes.get(label) or {},
        )
    return tasks


def _keys(tasks: Mapping[str, Task]) -> dict[str, str]:
    """Task name -> identity: the gate's stage (stage#2, ... when one runs twice), else
    `task:<name>` for a task that runs no recognised gate."""
    keys: dict[str, str] = {}
    seen: dict[str, int] = {}
    for name in sorted(tasks):
        stage = tasks[name].stage
        if not stage:
            keys[name] = f"task:{name}"
            continue
        seen[stage] = seen.get(stage, 0) + 1
        keys[name] = stage if seen[stage] == 1 else f"{stage}#{seen[stage]}"
    return keys


def _gate_order(tasks: Mapping[str, Task], keys: Mapping[str, str]) -> set[tuple[str, str]]:
    """(earlier, later) for every pair of gates where the later consumes, directly or through
    other tasks, the outputs of the earlier."""
    ancestors: dict[str, set[str]] = {}

    def walk(name: str, stack: frozenset[str]) -> set[str]:
        if name in ancestors:
            return ancestors[name]
        found: set[str] = set()
        for producer in tasks[name].producers:
            if producer in tasks and producer not in stack:
                found |= {producer} | walk(producer, stack | {producer})
        ancestors[name] = found
        return found

    pairs: set[tuple[str, str]] = set()
    for name, task in tasks.items():
        if not task.stage:
            continue
        for earlier in walk(name, frozenset({name})):
            if tasks[earlier].stage:
                pairs.add((keys[earlier], keys[name]))
    return pairs


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat |= _flatten(item, f"{prefix}{key}.")
        return flat
    return {prefix.rstrip("."): value}


def _wiring(value: Any, keys: Mapping[str, str]) -> Any:
    """A parameter's wiring with producer task names replaced by their identities."""
    if isinstance(value, Mapping):
        return {
            k: keys.get(v, v) if k == "producerTask" and isinstance(v, str) else _wiring(v, keys)
            for k, v in value.items()
        }
    return value


def _parameter_defaults(spec: Mapping[str, Any]) -> dict[str, Any]:
    parameters = _get(spec, "root", "inputDefinitions", "parameters") or {}
    return {
        str(name): definition.get("defaultValue")
        for name, definition in parameters.items()
        if isinstance(definition, Mapping)
    }


def _bundled_policy() -> dict[str, Any]:
    from aiact.policy import load_policy

    return load_policy()


def _gate_policy_changes(old_spec: Mapping[str, Any], new_spec: Mapping[str, Any]) -> list[Change]:
    """The thresholds of the gate_policy defaults. An empty default means each run's use case
    policy: with an empty use_case_uri default too, that is the bundled credit policy.yaml,
    which then stands for the empty side; otherwise the empty side has no thresholds."""
    old_defaults, new_defaults = _parameter_defaults(old_spec), _parameter_defaults(new_spec)
    old_policy = old_defaults.get("gate_policy") or {}
    new_policy = new_defaults.get("gate_policy") or {}
    if old_policy == new_policy:
        return []
    if not isinstance(old_policy, Mapping) or not isinstance(new_policy, Mapping):
        return [
            Change(
                "parameter default",
                "gate_policy",
                _fmt(old_policy),
                _fmt(new_policy),
                CHANGED,
                True,
            )
        ]

    def side(
        policy: Mapping[str, Any], defaults: Mapping[str, Any]
    ) -> tuple[Mapping[str, Any], str]:
        if policy:
            return policy, "(set)"
        if not defaults.get("use_case_uri"):
            return _bundled_policy(), "{} (the bundled credit policy.yaml)"
        return {}, "{} (the use case's policy.yaml)"

    (old_side, old_label), (new_side, new_label) = (
        side(old_policy, old_defaults),
        side(new_policy, new_defaults),
    )
    changes = []
    if bool(old_policy) != bool(new_policy):
        changes.append(
            Change("parameter default", "gate_policy", old_label, new_label, CHANGED, True)
        )
    return changes + diff_thresholds(old_side, new_side, "gate_policy.")


def diff_specs(old_docs: list[Any], new_docs: list[Any]) -> list[Change]:
    """The changes between two compiled specs (each the list of its YAML documents)."""
    old_tasks, new_tasks = parse_tasks(old_docs), parse_tasks(new_docs)
    old_keys, new_keys = _keys(old_tasks), _keys(new_tasks)
    old_by_key = {old_keys[n]: t for n, t in old_tasks.items()}
    new_by_key = {new_keys[n]: t for n, t in new_tasks.items()}
    changes: list[Change] = []

    for key in sorted(set(old_by_key) | set(new_by_key)):
        before, after = old_by_key.get(key), new_by_key.get(key)
        gate = not key.startswith("task:")
        label = key if gate else key.removeprefix("task:")
        if before is None and after is not None:
            what = "gate added" if gate else "task added"
            changes.append(Change(what, label, "-", f"task {after.name}", ADDED, gate))
            continue
        if after is None and before is not None:
            what = "gate removed" if gate else "task removed"
            changes.append(Change(what, label, f"task {before.name}", "-", LOOSENED, gate))
            continue
        assert before is not None and after is not None
        changes += _task_changes(label, gate, before, after, old_keys, new_keys)

    old_order, new_order = _gate_order(old_tasks, old_keys), _gate_order(new_tasks, new_keys)
    common = {k for k in old_by_key if not k.startswith("task:")} & set(new_by_key)
    old_order = {p for p in old_order if set(p) <= common}
    new_order = {p for p in new_order if set(p) <= common}
    for earlier, later in sorted(old_order - new_order):
        if (later, earlier) in new_order:
            changes.append(
                Change(
                    "gate order",
                    f"{later} / {earlier}",
                    f"{later} after {earlier}",
                    f"{earlier} after {later}",
                    CHANGED,
                    True,
                )
            )
        else:
            changes.append(
                Change(
                    "gate order",
                    later,
                    f"after {earlier}",
                    f"no longer after {earlier}",
                    LOOSENED,
                    True,
                )
            )
    for earlier, later in sorted(new_order - old_order):
        if (later, earlier) not in old_order:
            changes.append(
                Change(
                    "gate order", later, f"not after {earlier}", f"after {earlier}", TIGHTENED, True
                )
            )

    old_spec, new_spec = old_docs[0], new_docs[0]
    old_defaults, new_defaults = _parameter_defaults(old_spec), _parameter_defaults(new_spec)
    for name in sorted(set(old_defaults) | set(new_defaults)):
        if name == "gate_policy":
            continue
        before, after = old_defaults.get(name), new_defaults.get(name)
        if name in old_defaults and name in new_defaults and before == after:
            continue
        relevant = name in COMPLIANCE_PARAMETERS
        if name not in old_defaults:
            change = Change("parameter added", name, "-", _fmt(after), ADDED, relevant)
        elif name not in new_defaults:
            change = Change("parameter removed", name, _fmt(before), "-", REMOVED, relevant)
        else:
            effect = _compare(name, before, after) if relevant else CHANGED
            change = Change("parameter default", name, _fmt(before), _fmt(after), effect, relevant)
        changes.append(change)
    changes += _gate_policy_changes(old_spec, new_spec)
    return changes


def _task_changes(
    label: str,
    gate: bool,
    before: Task,
    after: Task,
    old_keys: Mapping[str, str],
    new_keys: Mapping[str, str],
) -> list[Change]:
    changes: list[Change] = []
    if before.name != after.name:
        changes.append(Change("task renamed", label, before.name, after.name, CHANGED, False))
    if before.caching != after.caching:
        effect = LOOSENED if after.caching else TIGHTENED
        state = {True: "cache on", False: "cache off"}
        changes.append(
            Change("caching", label, state[before.caching], state[after.caching], effect, gate)
        )
    if before.image != after.image:
        changes.append(Change("image", label, before.image, after.image, CHANGED, gate))
    old_resources, new_resources = _flatten(before.resources), _flatten(after.resources)
    for key in sorted(set(old_resources) | set(new_resources)):
        if old_resources.get(key) != new_resources.get(key):
            changes.append(
                Change(
                    "resources",
                    f"{label} {key}",
                    _fmt(old_resources.get(key)),
                    _fmt(new_resources.get(key)),
                    CHANGED,
                    False,
                )
            )
    for key in sorted(set(before.kubernetes) | set(after.kubernetes)):
        if before.kubernetes.get(key) != after.kubernetes.get(key):
            changes.append(
                Change(
                    "kubernetes",
                    f"{label} {key}",
                    _fmt(before.kubernetes.get(key)),
                    _fmt(after.kubernetes.get(key)),
                    CHANGED,
                    False,
                )
            )
    if gate:
        for name in sorted(set(before.parameters) | set(after.parameters)):
            old_wiring = _wiring(before.parameters.get(name), old_keys)
            new_wiring = _wiring(after.parameters.get(name), new_keys)
            if old_wiring != new_wiring:
                changes.append(
                    Change(
                        "gate input",
                        f"{label} {name}",
                        _fmt(old_wiring),
                        _fmt(new_wiring),
                        CHANGED,
                        True,
                    )
                )
    return changes


# --------------------------------------------------------------------------- rendering


def _cell(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text.replace("|", "\\|")


def _lines(changes: Iterable[Change]) -> list[str]:
    return [
        f"{c.effect.upper():<10} {c.category}: {c.subject}: {c.old} -> {c.new}" for c in changes
    ]


def render_markdown(diff: Diff) -> str:
    """A PR comment: heading, table of compliance-relevant changes, other changes."""
    relevant, other = diff.relevant, diff.other
    out = [
        f"## Compliance diff ({KIND_TITLES[diff.kind]})",
        "",
        f"`{diff.old_path}` → `{diff.new_path}`",
        "",
    ]
    if relevant:
        loosened = sum(1 for c in relevant if c.effect == LOOSENED)
        out += [
            f"**{len(relevant)} compliance-relevant change(s)**, {loosened} loosening.",
            "",
            "| effect | change | where | old | new |",
            "|---|---|---|---|---|",
        ]
        out += [
            f"| **{c.effect}** | {_cell(c.category)} | `{_cell(c.subject)}` | {_cell(c.old)} "
            f"| {_cell(c.new)} |"
            for c in relevant
        ]
    else:
        out.append("**No compliance-relevant change.**")
    out += ["", "### Other changes", ""]
    if other:
        out += [
            f"- {c.category}: `{_cell(c.subject)}`: {_cell(c.old)} → {_cell(c.new)}" for c in other
        ]
    else:
        out.append("None.")
    return "\n".join(out) + "\n"


def render_text(diff: Diff) -> str:
    """Plain text: one line per change."""
    relevant, other = diff.relevant, diff.other
    out = [f"compliance diff ({KIND_TITLES[diff.kind]}): {diff.old_path} -> {diff.new_path}"]
    if relevant:
        out.append(f"{len(relevant)} compliance-relevant change(s):")
        out += [f"  {line}" for line in _lines(relevant)]
    else:
        out.append("no compliance-relevant change")
    if other:
        out.append(f"{len(other)} other change(s):")
        out += [f"  {line}" for line in _lines(other)]
    return "\n".join(out) + "\n"


def render(diff: Diff, form: str = "markdown") -> str:
    """The diff as `markdown` (a PR comment) or `text`."""
    return render_text(diff) if form == "text" else render_markdown(diff)
