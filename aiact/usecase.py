"""A use case as a versioned artefact: a folder (local path, ``file://`` or ``s3://`` prefix)
holding its declaration (``usecase.yaml``), the TFDV schema of the raw source
(``schema.pbtxt``), the data card (``data_card.yaml``) and the gate policy (``policy.yaml``).

The declaration is validated against a published schema (the pydantic models below,
``USE_CASE_JSON_SCHEMA``); every error is one line naming the file and the field. The folder's
content hash (``sha256_path``) is its identity, recorded in MLMD as an ``aiact.UseCase`` input
of every stage that reads it. Vocabularies and protected groups are declared once, in
``usecase.yaml``; ``schema.pbtxt`` must agree with them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aiact.hashing import sha256_path
from aiact.lineage import USE_CASE as USE_CASE_TYPE
from aiact.lineage import ArtifactRecord
from aiact.specs import CategoricalFeature, FeatureSpec, NumericFeature

DECLARATION = "usecase.yaml"
SCHEMA = "schema.pbtxt"
DATA_CARD = "data_card.yaml"
POLICY = "policy.yaml"
FILES = (DECLARATION, SCHEMA, DATA_CARD, POLICY)
BUNDLED_USE_CASE = Path(__file__).resolve().parent / "usecases" / "credit"
# The policy's fairness section may hold limits for attributes it does not name.
DEFAULT_FAIRNESS = "default"

Scalar = int | str | bool


class UseCaseError(ValueError):
    """A use case folder that cannot be used: one line naming the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelModel(_Strict):
    """The label column, every value it may take, and the favourable one."""

    column: str = Field(min_length=1)
    values: list[Scalar] = Field(min_length=2)
    favourable: Scalar


class NumericModel(_Strict):
    """A numeric model input: its documented range and transform."""

    range: tuple[float, float]
    transform: Literal["standardize", "log_standardize"]


class CategoricalModel(_Strict):
    """A categorical model input: its vocabulary (one-hot encoded)."""

    vocabulary: list[str] = Field(min_length=1)


class IntendedUseModel(_Strict):
    """What the AI system is for, who uses it and whom it affects (Annex IV 1(a), Art. 13(3)(b)):
    shown in every model card of the use case."""

    purpose: str = Field(min_length=1)
    users: list[str] = []
    affected_persons: list[str] = []
    out_of_scope: list[str] = []
    limitations: list[str] = []


class UseCaseModel(_Strict):
    """The schema of ``usecase.yaml`` (version 1)."""

    version: Literal[1]
    name: str = Field(pattern=r"^[a-z0-9-]+$", max_length=40)
    model_name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=63)
    label: LabelModel
    record_key: list[str] = []
    identifiers: list[str] = []
    passthrough: list[str] = []
    missing_values: list[str] = []
    protected_attributes: dict[str, list[str]] = Field(min_length=1)
    numeric: dict[str, NumericModel] = {}
    categorical: dict[str, CategoricalModel] = {}
    intended_use: IntendedUseModel | None = None

    @field_validator("protected_attributes")
    @classmethod
    def _groups(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, groups in value.items():
            if len(groups) < 2:
                raise ValueError(f"{name}: declare at least two groups")
        return value


USE_CASE_JSON_SCHEMA: dict[str, Any] = UseCaseModel.model_json_schema()


@dataclass(frozen=True)
class Label:
    """The label as declared: column, allowed values, favourable value (mapped to 1)."""

    column: str
    values: tuple[Scalar, ...]
    favourable: Scalar


@dataclass(frozen=True)
class UseCase:
    """A loaded, validated use case."""

    name: str
    model_name: str
    label: Label
    record_key: tuple[str, ...]
    identifiers: tuple[str, ...]
    passthrough: tuple[str, ...]
    missing_values: tuple[str, ...]
    protected_attributes: dict[str, tuple[str, ...]]
    spec: FeatureSpec
    schema_path: Path
    data_card_path: Path
    policy: dict[str, Any]
    directory: Path
    uri: str
    sha256: str

    @property
    def declared_columns(self) -> tuple[str, ...]:
        """Every column the use case declares, in a fixed order, without repeats."""
        columns = (
            *self.identifiers,
            *self.record_key,
            *self.spec.input_columns,
            *self.protected_attributes,
            self.label.column,
            *self.passthrough,
        )
        return tuple(dict.fromkeys(columns))

    @property
    def gated_columns(self) -> tuple[str, ...]:
        """The columns the data gate checks: model inputs, protected attributes, label."""
        return tuple(
            dict.fromkeys((*self.spec.input_columns, *self.protected_attributes, self.label.column))
        )

    def file_uri(self, filename: str) -> str:
        """The URI of one file of the folder (as the folder's URI spells it)."""
        return f"{self.uri.rstrip('/')}/{filename}"


def _field(location: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in location) or "(top level)"


def parse_declaration(raw: Any, source: str = DECLARATION) -> UseCaseModel:
    """Validate a ``usecase.yaml`` document; a UseCaseError naming the first bad field."""
    if not isinstance(raw, Mapping):
        raise UseCaseError(f"{source}: must be a mapping, got {type(raw).__name__}")
    try:
        model = UseCaseModel.model_validate(dict(raw))
    except ValidationError as exc:
        error = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        message = str(error["msg"]).removeprefix("Value error, ")
        raise UseCaseError(f"{source}: {_field(error['loc'])}: {message}{more}") from None
    _check_consistency(model, source)
    return model


def _check_consistency(model: UseCaseModel, source: str) -> None:
    label = model.label
    if len(set(map(str, label.values))) != len(label.values):
        raise UseCaseError(f"{source}: label.values: values repeat: {label.values}")
    if str(label.favourable) not in set(map(str, label.values)):
        raise UseCaseError(
            f"{source}: label.favourable: {label.favourable!r} is not one of label.values "
            f"{label.values}"
        )
    roles: dict[str, str] = {}
    named = [
        *((c, "numeric") for c in model.numeric),
        *((c, "categorical") for c in model.categorical),
        *((c, "protected_attributes") for c in model.protected_attributes),
        (label.column, "label.column"),
        *((c, "identifiers") for c in model.identifiers),
        *((c, "passthrough") for c in model.passthrough),
    ]
    for column, role in named:
        if column in roles:
            raise UseCaseError(
                f"{source}: {role}: column {column!r} is already declared under {roles[column]}"
            )
        roles[column] = role
    if not model.numeric and not model.categorical:
        raise UseCaseError(f"{source}: numeric: the use case declares no model input")
    for column in model.record_key:
        if column not in roles:
            raise UseCaseError(f"{source}: record_key: {column!r} is not a declared column")
    for name, feature in model.numeric.items():
        low, high = feature.range
        if not low < high:
            raise UseCaseError(f"{source}: numeric.{name}.range: [{low}, {high}] is empty")
    for name, groups in {
        **{k: v.vocabulary for k, v in model.categorical.items()},
        **model.protected_attributes,
    }.items():
        if len(set(groups)) != len(groups):
            raise UseCaseError(f"{source}: {name}: values repeat: {groups}")


def feature_spec(model: UseCaseModel) -> FeatureSpec:
    """The model inputs a declaration names."""
    return FeatureSpec(
        label=model.label.column,
        protected_attributes=tuple(model.protected_attributes),
        numeric=tuple(
            NumericFeature(name, float(f.range[0]), float(f.range[1]), f.transform)
            for name, f in model.numeric.items()
        ),
        categorical=tuple(
            CategoricalFeature(name, tuple(f.vocabulary)) for name, f in model.categorical.items()
        ),
    )


_BLOCK = re.compile(r"^(feature|string_domain) \{\n(.*?)^\}", re.MULTILINE | re.DOTALL)
_NAME = re.compile(r'^  name: "((?:[^"\\]|\\.)*)"', re.MULTILINE)
_DOMAIN = re.compile(r'^  domain: "((?:[^"\\]|\\.)*)"', re.MULTILINE)
_VALUE = re.compile(r'^\s*value: "((?:[^"\\]|\\.)*)"', re.MULTILINE)


def schema_vocabularies(text: str) -> dict[str, tuple[str, ...] | None]:
    """Feature name -> its string vocabulary in a TFDV schema text (None: no string domain).

    Reads only what the agreement check needs (feature names, global and inline string
    domains), so stages without TFDV can validate a use case."""
    domains: dict[str, tuple[str, ...]] = {}
    features: dict[str, str] = {}
    inline: dict[str, tuple[str, ...]] = {}
    for kind, body in _BLOCK.findall(text):
        name = _NAME.search(body)
        if name is None:
            continue
        if kind == "string_domain":
            domains[name.group(1)] = tuple(_VALUE.findall(body))
            continue
        reference = _DOMAIN.search(body)
        features[name.group(1)] = reference.group(1) if reference else ""
        if "string_domain {" in body:
            inline[name.group(1)] = tuple(_VALUE.findall(body))
    return {
        feature: inline.get(feature, domains.get(reference))
        for feature, reference in features.items()
    }


def check_schema(model: UseCaseModel, text: str, source: str = SCHEMA) -> None:
    """``schema.pbtxt`` declares every gated column, and the vocabularies of
    ``usecase.yaml``."""
    if "feature {" not in text:
        raise UseCaseError(f"{source}: declares no feature")
    vocabularies = schema_vocabularies(text)
    required = (
        *model.numeric,
        *model.categorical,
        *model.protected_attributes,
        model.label.column,
    )
    for column in required:
        if column not in vocabularies:
            raise UseCaseError(f"{source}: feature {column}: not in the schema")
    declared = {
        **{k: tuple(v.vocabulary) for k, v in model.categorical.items()},
        **{k: tuple(v) for k, v in model.protected_attributes.items()},
    }
    for column, values in declared.items():
        found = vocabularies[column]
        if found is None or set(found) != set(values):
            raise UseCaseError(
                f"{source}: feature {column}: schema vocabulary {list(found or ())} differs "
                f"from {DECLARATION}'s {list(values)}"
            )


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise UseCaseError(f"{path.name}: not valid YAML{where}: {problem}") from None


def validate_policy(policy: Mapping[str, Any], use_case: UseCase) -> None:
    """A use-case policy may set limits only for what the use case declares: fairness limits
    for its protected attributes (plus `default`), split fractions that sum to 1."""
    if not isinstance(policy, Mapping) or "version" not in policy:
        raise UseCaseError(f"{POLICY}: must be a mapping with 'version'")
    evaluation = policy.get("evaluation")
    fairness = evaluation.get("fairness") if isinstance(evaluation, Mapping) else None
    if isinstance(fairness, Mapping):
        for attribute, limits in fairness.items():
            if attribute != DEFAULT_FAIRNESS and attribute not in use_case.protected_attributes:
                raise UseCaseError(
                    f"{POLICY}: evaluation.fairness.{attribute}: not a protected attribute of "
                    f"use case {use_case.name}"
                )
            if not isinstance(limits, Mapping):
                raise UseCaseError(f"{POLICY}: evaluation.fairness.{attribute}: must be a mapping")
        uncovered = (
            [a for a in use_case.protected_attributes if a not in fairness]
            if DEFAULT_FAIRNESS not in fairness
            else []
        )
        if uncovered:
            raise UseCaseError(
                f"{POLICY}: evaluation.fairness.{uncovered[0]}: no fairness limits for this "
                f"protected attribute of use case {use_case.name} (and no 'default')"
            )
    quality = policy.get("data_quality")
    bias = quality.get("bias") if isinstance(quality, Mapping) else None
    if isinstance(bias, Mapping):
        # Blocks of the bias examination name a protected attribute or an intersection a×b.
        for key, value in bias.items():
            if not isinstance(value, Mapping):
                continue
            named = key.split("×")
            unknown = [a for a in named if a not in use_case.protected_attributes]
            if unknown or len(named) > 2:
                raise UseCaseError(
                    f"{POLICY}: data_quality.bias.{key}: not a protected attribute (or a×b "
                    f"intersection of two) of use case {use_case.name}"
                )
    features = policy.get("features")
    fractions = features.get("split_fractions") if isinstance(features, Mapping) else None
    if fractions is not None:
        split_fractions(policy)


SPLIT_NAMES = ("train", "validation", "test")
DEFAULT_SPLIT_FRACTIONS = {"train": 0.7, "validation": 0.15, "test": 0.15}


def split_fractions(policy: Mapping[str, Any]) -> dict[str, float]:
    """The policy's `features.split_fractions` (default 70/15/15), checked."""
    features = policy.get("features")
    raw = features.get("split_fractions") if isinstance(features, Mapping) else None
    if raw is None:
        return dict(DEFAULT_SPLIT_FRACTIONS)
    where = f"{POLICY}: features.split_fractions"
    if not isinstance(raw, Mapping) or set(raw) != set(SPLIT_NAMES):
        raise UseCaseError(f"{where}: must map exactly {', '.join(SPLIT_NAMES)} to fractions")
    fractions: dict[str, float] = {}
    for name in SPLIT_NAMES:
        value = raw[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
            raise UseCaseError(f"{where}.{name}: {value!r} is not a fraction in (0, 1)")
        fractions[name] = float(value)
    if abs(sum(fractions.values()) - 1.0) > 1e-9:
        raise UseCaseError(f"{where}: fractions sum to {sum(fractions.values()):g}, not 1")
    return fractions


def fetch_use_case(uri: str, workdir: Path) -> Path:
    """A local directory holding the use case at `uri` ('' = the bundled credit example)."""
    from aiact.storage import StorageError, fetch_tree

    if not uri:
        return BUNDLED_USE_CASE
    try:
        directory = fetch_tree(uri, workdir)
    except StorageError as exc:
        raise UseCaseError(f"use case {uri}: {exc}") from None
    if not directory.is_dir():
        raise UseCaseError(f"use case {uri}: not a folder")
    return directory


def load_use_case(uri: str, workdir: Path) -> UseCase:
    """Fetch, validate and hash the use case at `uri` ('' = the bundled credit example)."""
    directory = fetch_use_case(uri, workdir)
    for filename in FILES:
        if not (directory / filename).is_file():
            raise UseCaseError(f"{filename}: missing from use case {uri or directory}")
    model = parse_declaration(_read_yaml(directory / DECLARATION))
    check_schema(model, (directory / SCHEMA).read_text())
    card = _read_yaml(directory / DATA_CARD)
    if not isinstance(card, Mapping):
        raise UseCaseError(f"{DATA_CARD}: must be a mapping")
    policy = _read_yaml(directory / POLICY)
    if not isinstance(policy, dict):
        raise UseCaseError(f"{POLICY}: must be a mapping with 'version'")
    use_case = UseCase(
        name=model.name,
        model_name=model.model_name,
        label=Label(model.label.column, tuple(model.label.values), model.label.favourable),
        record_key=tuple(model.record_key),
        identifiers=tuple(model.identifiers),
        passthrough=tuple(model.passthrough),
        missing_values=tuple(model.missing_values),
        protected_attributes={k: tuple(v) for k, v in model.protected_attributes.items()},
        spec=feature_spec(model),
        schema_path=directory / SCHEMA,
        data_card_path=directory / DATA_CARD,
        policy=policy,
        directory=directory,
        uri=uri or str(BUNDLED_USE_CASE),
        sha256=sha256_path(directory),
    )
    validate_policy(policy, use_case)
    return use_case


def resolve_policy(gate_policy: Mapping[str, Any] | None, use_case: UseCase) -> dict[str, Any]:
    """The gate policy of a run: `gate_policy` when given (it overrides the use case's),
    else the use case's policy.yaml; refused when it names what the use case does not declare.
    Either way the stage then checks it against the platform floor (StageContext.read_policy)."""
    policy = dict(gate_policy) if gate_policy else dict(use_case.policy)
    validate_policy(policy, use_case)
    return policy


def record_of(use_case: UseCase) -> ArtifactRecord:
    """The use case as an MLMD input (type aiact.UseCase, role `use_case`)."""
    return ArtifactRecord(
        USE_CASE_TYPE,
        use_case.uri,
        use_case.sha256,
        "use_case",
        {"name": use_case.name, "origin_uri": use_case.uri, "format_version": 1},
    )


def bundled_declaration() -> UseCaseModel:
    """The bundled credit use case's declaration (validated), without hashing the folder."""
    return parse_declaration(
        yaml.safe_load((BUNDLED_USE_CASE / DECLARATION).read_text()),
        f"{BUNDLED_USE_CASE.name}/{DECLARATION}",
    )
