"""`aiact verify-spec`: prove from a compiled KFP v2 spec's DAG alone that it has the declared
structure.

The structure (`pipelines/compliance_structure.yaml`) is an ordered list of gates, the last one
the deployment. Each gate is recognised by what its tasks RUN (a regex on the executor's image
and one on its command and args), never by task names. The spec's tasks are flattened through
sub-DAGs and conditions into executor ("leaf") tasks joined by DATA edges: a consumer's input
`taskOutputArtifact` / `taskOutputParameter` names its producer (a sub-DAG's output resolves to
the inner task that produces it, a sub-DAG's input to the outer producer bound to it, and a
condition's inputs feed every task it guards). `dependentTasks` alone never counts as an edge.

For every deployment task D, with the gates g0 .. gN (gN the deployment):

- every gate task of gate k >= 1 upstream of D (or D itself) consumes, through data, the output
  of a task of gate k-1 (so its chain reaches back to g0 in order);
- every gate task of gate k < N upstream of D reaches D through a task of gate k+1 (no output
  of a gate jumps over the next one into the deployment);
- no gate task consumes the output of a task of a LATER gate (order);
- no gate task runs after its upstream failed (`triggerPolicy.strategy:
  ALL_UPSTREAM_TASKS_COMPLETED`, an exit handler);

and every gate declared `cache_off` has caching off, every gate declared `accelerator`
requests one (`resources.accelerator` or `resourceSpec.accelerator`, a literal count >= 1),
and no credential is inlined (parameter defaults, constant inputs, container env values,
secret-looking keys or values).
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_STRUCTURE = (
    Path(__file__).resolve().parent.parent / "pipelines" / "compliance_structure.yaml"
)

SECRET_KEY = re.compile(
    r"(?i)(secret|passw(or)?d|passwd|pwd|token|api[_-]?key|private[_-]?key|credential|"
    r"access[_-]?key)"
)
SECRET_VALUE = (
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key)\s*[=:]\s*\S+"),
    re.compile(r"(?i)aws_secret_access_key\s*[=:]?\s*\S+"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
)
TOKEN = re.compile(r"[A-Za-z0-9+/_=-]{40,}")
HEX = re.compile(r"[0-9a-fA-F]+")


class SpecError(ValueError):
    """A spec or structure file that cannot be read."""


@dataclass(frozen=True)
class Gate:
    name: str
    image: re.Pattern[str]
    command: re.Pattern[str]
    cache_off: bool = False
    accelerator: bool = False
    # Input parameters the task must bind to these literal constants (compiled into the DAG,
    # out of reach of run parameters), e.g. which gate a verdict task judges.
    constants: tuple[tuple[str, str], ...] = ()


@dataclass
class Leaf:
    """One executor task of the flattened DAG."""

    id: str
    executor: dict[str, Any]
    task: dict[str, Any]
    parents: set[str] = field(default_factory=set)
    guards: list[dict[str, Any]] = field(default_factory=list)

    @property
    def container(self) -> dict[str, Any]:
        container: dict[str, Any] = self.executor.get("container") or {}
        return container


@dataclass
class Verification:
    violations: list[str]
    summary: str

    @property
    def ok(self) -> bool:
        return not self.violations


def load_structure(path: Path) -> list[Gate]:
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"{path}: cannot read the structure: {exc}") from None
    entries = loaded.get("gates") if isinstance(loaded, dict) else None
    if not isinstance(entries, list) or len(entries) < 2:
        raise SpecError(f"{path}: needs `gates:`, a list of at least two gates")
    gates: list[Gate] = []
    for entry in entries:
        if not isinstance(entry, dict) or not entry.get("name"):
            raise SpecError(f"{path}: every gate needs a name, an image and a command regex")
        try:
            gates.append(
                Gate(
                    name=str(entry["name"]),
                    image=re.compile(str(entry.get("image", ""))),
                    command=re.compile(str(entry.get("command", ""))),
                    cache_off=bool(entry.get("cache_off", False)),
                    accelerator=bool(entry.get("accelerator", False)),
                    constants=tuple(
                        (str(k), str(v)) for k, v in (entry.get("constants") or {}).items()
                    ),
                )
            )
        except re.error as exc:
            raise SpecError(f"{path}: gate {entry['name']}: bad regex: {exc}") from None
    names = [g.name for g in gates]
    if len(set(names)) != len(names):
        raise SpecError(f"{path}: gate names must be distinct")
    return gates


def load_spec(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pipeline spec and its platform spec (`{}` when absent)."""
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"{path}: cannot read the spec: {exc}") from None
    spec = next((d for d in documents if isinstance(d, dict) and "root" in d), None)
    if spec is None:
        raise SpecError(f"{path}: not a compiled KFP v2 pipeline spec (no `root`)")
    platform = next((d for d in documents if isinstance(d, dict) and "platforms" in d), {})
    return spec, platform


class _Flattener:
    """Expands the root DAG, sub-DAGs and conditions into leaves joined by data edges."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.components: dict[str, Any] = spec.get("components") or {}
        self.executors: dict[str, Any] = (spec.get("deploymentSpec") or {}).get("executors") or {}
        self.leaves: dict[str, Leaf] = {}
        root = spec.get("root") or {}
        if "dag" not in root:
            raise SpecError("the spec's root is not a DAG")
        self._expand(root["dag"], "", {}, set(), [])

    def _component(self, task: dict[str, Any]) -> dict[str, Any]:
        name = (task.get("componentRef") or {}).get("name", "")
        component = self.components.get(name)
        if not isinstance(component, dict):
            raise SpecError(f"task refers to unknown component {name!r}")
        return component

    def _outputs(
        self, dag: dict[str, Any], prefix: str, producer: str, kind: str, key: str
    ) -> set[str]:
        """The leaves producing output `key` of task `producer` (in `dag`, under `prefix`)."""
        task = (dag.get("tasks") or {}).get(producer)
        if not isinstance(task, dict):
            return set()
        component = self._component(task)
        if "dag" not in component:
            return {prefix + producer}
        inner = component["dag"]
        inner_prefix = f"{prefix}{producer}/"
        outputs = (inner.get("outputs") or {}).get(kind + "s") or {}
        selected = outputs.get(key) or {}
        found: set[str] = set()
        if kind == "artifact":
            for selector in selected.get("artifactSelectors") or []:
                found |= self._outputs(
                    inner,
                    inner_prefix,
                    selector.get("producerSubtask", ""),
                    "artifact",
                    selector.get("outputArtifactKey", ""),
                )
        else:
            selectors = list((selected.get("valueFromOneof") or {}).get("parameterSelectors") or [])
            if selected.get("valueFromParameter"):
                selectors.append(selected["valueFromParameter"])
            for selector in selectors:
                found |= self._outputs(
                    inner,
                    inner_prefix,
                    selector.get("producerSubtask", ""),
                    "parameter",
                    selector.get("outputParameterKey", ""),
                )
        return found

    def _inputs(
        self,
        dag: dict[str, Any],
        prefix: str,
        task: dict[str, Any],
        bindings: dict[tuple[str, str], set[str]],
    ) -> dict[tuple[str, str], set[str]]:
        """Each input of `task` -> the leaves its value comes from."""
        resolved: dict[tuple[str, str], set[str]] = {}
        inputs = task.get("inputs") or {}
        for kind in ("artifact", "parameter"):
            for name, source in (inputs.get(kind + "s") or {}).items():
                producers: set[str] = set()
                if not isinstance(source, dict):
                    continue
                if "taskOutputArtifact" in source:
                    ref = source["taskOutputArtifact"]
                    producers |= self._outputs(
                        dag,
                        prefix,
                        ref.get("producerTask", ""),
                        "artifact",
                        ref.get("outputArtifactKey", ""),
                    )
                if "taskOutputParameter" in source:
                    ref = source["taskOutputParameter"]
                    producers |= self._outputs(
                        dag,
                        prefix,
                        ref.get("producerTask", ""),
                        "parameter",
                        ref.get("outputParameterKey", ""),
                    )
                if "componentInputArtifact" in source:
                    producers |= bindings.get(("artifact", source["componentInputArtifact"]), set())
                if "componentInputParameter" in source:
                    producers |= bindings.get(
                        ("parameter", source["componentInputParameter"]), set()
                    )
                resolved[(kind, name)] = producers
        return resolved

    def _expand(
        self,
        dag: dict[str, Any],
        prefix: str,
        bindings: dict[tuple[str, str], set[str]],
        control: set[str],
        guards: list[dict[str, Any]],
    ) -> None:
        for name, task in (dag.get("tasks") or {}).items():
            if not isinstance(task, dict):
                continue
            component = self._component(task)
            inputs = self._inputs(dag, prefix, task, bindings)
            trigger = task.get("triggerPolicy") or {}
            own_guards = [*guards, trigger] if trigger else guards
            if "dag" in component:
                inner_control = set(control)
                if trigger.get("condition") or {"parameterIterator", "artifactIterator"} & set(
                    task
                ):
                    # What decides whether (or how often) the tasks inside run is an input too.
                    for producers in inputs.values():
                        inner_control |= producers
                self._expand(
                    component["dag"], f"{prefix}{name}/", inputs, inner_control, own_guards
                )
                continue
            label = component.get("executorLabel", "")
            executor = self.executors.get(label)
            if not isinstance(executor, dict):
                raise SpecError(f"task {prefix}{name}: no executor {label!r}")
            parents = set(control)
            for producers in inputs.values():
                parents |= producers
            self.leaves[prefix + name] = Leaf(prefix + name, executor, task, parents, own_guards)


def _command_text(container: dict[str, Any]) -> str:
    return " ".join(
        str(part) for part in [*(container.get("command") or []), *(container.get("args") or [])]
    )


def _binds_constants(task: dict[str, Any], constants: tuple[tuple[str, str], ...]) -> bool:
    parameters = ((task or {}).get("inputs") or {}).get("parameters") or {}
    for name, wanted in constants:
        source = parameters.get(name) or {}
        if ((source.get("runtimeValue") or {}).get("constant")) != wanted:
            return False
    return True


def _classify(leaves: dict[str, Leaf], gates: list[Gate]) -> tuple[dict[str, int], list[str]]:
    kinds: dict[str, int] = {}
    problems: list[str] = []
    for leaf_id, leaf in sorted(leaves.items()):
        image = str(leaf.container.get("image", ""))
        command = _command_text(leaf.container)
        matched = [
            i
            for i, g in enumerate(gates)
            if g.image.search(image)
            and g.command.search(command)
            and _binds_constants(leaf.task, g.constants)
        ]
        if len(matched) > 1:
            names = ", ".join(gates[i].name for i in matched)
            problems.append(f"task {leaf_id} runs what several gates run ({names})")
        if matched:
            kinds[leaf_id] = matched[0]
    return kinds, problems


def _ancestors(leaves: dict[str, Leaf], start: str) -> dict[str, str | None]:
    """Every data ancestor of `start` (and `start`) -> its next task towards `start` (BFS)."""
    towards: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        current = queue.popleft()
        for parent in sorted(leaves[current].parents):
            if parent in leaves and parent not in towards:
                towards[parent] = current
                queue.append(parent)
    return towards


def _path_down(towards: dict[str, str | None], node: str) -> list[str]:
    """The path from the start of `towards` back to `node`, start first."""
    path = [node]
    while (step := towards[path[-1]]) is not None:
        path.append(step)
    return list(reversed(path))


def _render(path: Iterable[str]) -> str:
    return " <- ".join(path)


def _reaches_through(
    leaves: dict[str, Leaf], kinds: dict[str, int], source: str, target: str, via: int
) -> bool:
    """Whether a data path from `source` to `target` passes a task of gate `via`."""
    children: dict[str, set[str]] = {}
    for leaf in leaves.values():
        for parent in leaf.parents:
            children.setdefault(parent, set()).add(leaf.id)
    # States: (task, passed the gate yet).
    seen = {(source, False)}
    queue = deque(seen)
    while queue:
        node, passed = queue.popleft()
        passed = passed or kinds.get(node) == via
        if node == target and passed:
            return True
        for child in children.get(node, ()):
            state = (child, passed or kinds.get(child) == via)
            if state not in seen:
                seen.add(state)
                queue.append(state)
    return False


def _back_path(leaves: dict[str, Leaf], kinds: dict[str, int], node: str, below: int) -> list[str]:
    """From `node` upstream, preferring the latest gate, until a gate before `below` or a root."""
    path: list[str] = []
    current = node
    while True:
        parents = sorted(p for p in leaves[current].parents if p in leaves and p not in path)
        if not parents:
            return path
        current = max(parents, key=lambda p: (kinds.get(p, -1), p))
        path.append(current)
        if kinds.get(current, -1) < below and current in kinds:
            return path
        if len(path) > len(leaves):
            return path


def _check_paths(
    leaves: dict[str, Leaf], kinds: dict[str, int], gates: list[Gate]
) -> Iterator[str]:
    last = len(gates) - 1
    deployments = sorted(n for n, k in kinds.items() if k == last)
    if not deployments:
        yield f"no task runs the {gates[last].name} gate: nothing to verify the structure of"
        return
    for name, index in ((g.name, i) for i, g in enumerate(gates)):
        if index not in kinds.values():
            yield f"no task runs the {name} gate"
    reported: set[tuple[str, str]] = set()
    for deployment in deployments:
        towards = _ancestors(leaves, deployment)
        for node in sorted(towards):
            kind = kinds.get(node)
            if kind is None:
                continue
            upstream = _ancestors(leaves, node)
            if kind >= 1 and not any(kinds.get(a) == kind - 1 for a in upstream if a != node):
                key = (node, gates[kind - 1].name)
                if key not in reported:
                    reported.add(key)
                    path = _path_down(towards, node) + _back_path(leaves, kinds, node, kind - 1)
                    yield f"path {_render(path)} skips {gates[kind - 1].name}"
            if kind < last and not _reaches_through(leaves, kinds, node, deployment, kind + 1):
                key = (node, gates[kind + 1].name)
                if key not in reported:
                    reported.add(key)
                    path = _path_down(towards, node)
                    yield f"path {_render(path)} skips {gates[kind + 1].name}"
    for node, kind in sorted(kinds.items()):
        for ancestor in sorted(_ancestors(leaves, node)):
            later = kinds.get(ancestor)
            if later is not None and later > kind:
                path = _path_down(_ancestors(leaves, node), ancestor)
                yield (
                    f"path {_render(path)} runs {gates[kind].name} after {gates[later].name}: "
                    "out of the declared order"
                )
        for guard in leaves[node].guards:
            if guard.get("strategy") == "ALL_UPSTREAM_TASKS_COMPLETED":
                yield (
                    f"task {node} ({gates[kind].name}) runs even when its upstream failed "
                    "(triggerPolicy ALL_UPSTREAM_TASKS_COMPLETED)"
                )
                break


def _check_caching(
    leaves: dict[str, Leaf], kinds: dict[str, int], gates: list[Gate]
) -> Iterator[str]:
    for node, kind in sorted(kinds.items()):
        caching = leaves[node].task.get("cachingOptions") or {}
        if gates[kind].cache_off and caching.get("enableCache"):
            yield (
                f"task {node} ({gates[kind].name}) has caching enabled (cachingOptions.enableCache)"
            )


def _accelerator_count(container: dict[str, Any]) -> tuple[str, str]:
    for key in ("resources", "resourceSpec"):
        accelerator = (container.get(key) or {}).get("accelerator") or {}
        if accelerator:
            kind = str(accelerator.get("resourceType") or accelerator.get("type") or "")
            count = str(accelerator.get("resourceCount") or accelerator.get("count") or "")
            return kind, count
    return "", ""


def _check_accelerators(
    leaves: dict[str, Leaf], kinds: dict[str, int], gates: list[Gate]
) -> Iterator[str]:
    for node, kind in sorted(kinds.items()):
        if not gates[kind].accelerator:
            continue
        accelerator, count = _accelerator_count(leaves[node].container)
        try:
            requested = float(count) >= 1
        except ValueError:
            requested = False
        if not accelerator or not requested:
            found = f" (found type {accelerator!r}, count {count!r})" if accelerator else ""
            yield (
                f"task {node} ({gates[kind].name}) requests no accelerator "
                f"(resources.accelerator with a literal count >= 1){found}"
            )


def _high_entropy(text: str) -> bool:
    counts = {c: text.count(c) for c in set(text)}
    entropy = -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())
    classes = sum(any(test(c) for c in text) for test in (str.isupper, str.islower, str.isdigit))
    return entropy >= 4.0 and classes == 3 and text.count("/") <= 3


def _secret_reason(key: str, value: Any) -> str:
    """Why `key: value` looks like an inlined credential ('' when it does not)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if reason := _secret_reason(str(k), v):
                return reason
        return ""
    if isinstance(value, list):
        for v in value:
            if reason := _secret_reason(key, v):
                return reason
        return ""
    if value is None or isinstance(value, bool):
        return ""
    text = str(value)
    if text.strip() and SECRET_KEY.search(key) and not text.startswith("{{$"):
        return f"secret-looking key {key!r} has an inline value"
    for pattern in SECRET_VALUE:
        if pattern.search(text):
            return f"value of {key!r} looks like a credential"
    for token in TOKEN.findall(text):
        if not HEX.fullmatch(token.strip("=")) and _high_entropy(token):
            return f"value of {key!r} holds a long base64-like token"
    return ""


def _check_credentials(spec: dict[str, Any], platform: dict[str, Any]) -> Iterator[str]:
    scopes: list[tuple[str, dict[str, Any]]] = [("root", spec.get("root") or {})]
    scopes += sorted((str(k), v) for k, v in (spec.get("components") or {}).items())
    for where, component in scopes:
        params = ((component.get("inputDefinitions") or {}).get("parameters")) or {}
        for name, definition in sorted(params.items()):
            if not isinstance(definition, dict) or "defaultValue" not in definition:
                continue
            if reason := _secret_reason(str(name), definition["defaultValue"]):
                yield f"credential inlined in {where} parameter {name} default: {reason}"
        tasks = (component.get("dag") or {}).get("tasks") or {}
        for task_name, task in sorted(tasks.items()):
            inputs = ((task or {}).get("inputs") or {}).get("parameters") or {}
            for name, source in sorted(inputs.items()):
                constant = ((source or {}).get("runtimeValue") or {}).get("constant")
                if constant is not None and (reason := _secret_reason(str(name), constant)):
                    yield f"credential inlined in task {task_name} input {name}: {reason}"
    executors = (spec.get("deploymentSpec") or {}).get("executors") or {}
    for label, executor in sorted(executors.items()):
        container = (executor or {}).get("container") or {}
        for variable in container.get("env") or []:
            name = str((variable or {}).get("name", ""))
            if reason := _secret_reason(name, (variable or {}).get("value")):
                yield f"credential inlined in executor {label} env {name}: {reason}"
    kubernetes = ((platform.get("platforms") or {}).get("kubernetes") or {}).get(
        "deploymentSpec"
    ) or {}
    for label, config in sorted((kubernetes.get("executors") or {}).items()):
        for text in _strings(config):
            if any(p.search(text) for p in SECRET_VALUE):
                yield f"credential inlined in the platform spec of executor {label}"
                break


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def verify(spec: dict[str, Any], platform: dict[str, Any], gates: list[Gate]) -> Verification:
    """Every violation of the declared structure in `spec` (one line each)."""
    leaves = _Flattener(spec).leaves
    kinds, violations = _classify(leaves, gates)
    violations += _check_paths(leaves, kinds, gates)
    violations += _check_caching(leaves, kinds, gates)
    violations += _check_accelerators(leaves, kinds, gates)
    violations += _check_credentials(spec, platform)
    deployments = sum(1 for k in kinds.values() if k == len(gates) - 1)
    order = " -> ".join(g.name for g in gates)
    summary = (
        f"verified: {len(leaves)} tasks, {deployments} deployment(s), every one behind "
        f"{order} by data; gates uncached, accelerator requested, no inlined credential"
    )
    return Verification(violations=list(dict.fromkeys(violations)), summary=summary)


def verify_file(spec_path: Path, structure_path: Path | None = None) -> Verification:
    spec, platform = load_spec(spec_path)
    return verify(spec, platform, load_structure(structure_path or DEFAULT_STRUCTURE))
