"""Indexed MLMD queries for the audit commands: answers whose cost does not grow with the store.

Every function here asks the database for exactly the nodes it needs: a filter query on the
node's type, its name or its custom properties (ML Metadata keeps indexes on all three), ordered
by id (newest first) and limited, or the nodes of one context. None of them lists every
artefact or execution of a type and filters in Python, which at 10,000 runs costs 100-430 ms per
question on SQLite (MLMD decodes every property of every node it returns).

Examples::

    newest_artifact(store, lineage.DEPLOYMENT)                           # the latest deployment
    query_artifacts(store, lineage.MODEL, {"model_name": "credit", "stage": "production"})
    artifacts_with_prefix(store, lineage.MODEL, "9a38c1d2e4f5")          # a model by version
    recent_runs(store, limit=20)                                         # `aiact runs`
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ml_metadata.metadata_store import ListOptions, OrderByField
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb

from aiact import lineage
from aiact.lineage import LineageStore, PropertyValue

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Characters a filter query cannot match reliably: MLMD 1.17 copies the literal into its SQL
# between double quotes, without escaping a double quote or a backslash for the backend (on
# SQLite `"a\"b"` is a syntax error). Conditions on such values are checked in Python.
_UNSAFE = re.compile(r'[\\"\x00-\x1f\x7f]')
_HEX = "0123456789abcdef"
NEWEST_WINDOW = 1000  # artefact ids: the first window `newest_artifact` looks in
# Databases on which one filter query with an id list beats a query per id (producers_of_many).
SINGLE_QUERY_BACKENDS = ("sqlite", "fake_database")


def filter_literal(value: str) -> str:
    """`value` as a string literal of MLMD's filter-query language (ZetaSQL), quotes
    escaped: `it's` -> `'it\\'s'`. Double quotes, backslashes and control characters are refused."""
    if _UNSAFE.search(value):
        raise ValueError(f"{value!r} cannot be matched by a filter query")
    return "'" + value.replace("'", "\\'") + "'"


def property_condition(key: str, value: PropertyValue) -> str:
    """The filter-query condition `custom_properties.KEY.<kind>_value = VALUE`."""
    if not _KEY.fullmatch(key):
        raise ValueError(f"property name {key!r} cannot be used in a filter query")
    if isinstance(value, bool):
        return f"custom_properties.{key}.bool_value = {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"custom_properties.{key}.int_value = {value}"
    if isinstance(value, float):
        return f"custom_properties.{key}.double_value = {value!r}"
    return f"custom_properties.{key}.string_value = {filter_literal(str(value))}"


def _safe(value: PropertyValue) -> bool:
    return not isinstance(value, str) or not _UNSAFE.search(value)


def _options(query: str, limit: int | None, order: OrderByField) -> ListOptions:
    return ListOptions(filter_query=query, order_by=order, is_asc=False, limit=limit)


def query_artifacts(
    store: LineageStore,
    type_name: str,
    where: Mapping[str, PropertyValue] | None = None,
    *,
    limit: int | None = None,
    extra: Sequence[str] = (),
    order: OrderByField = OrderByField.ID,
) -> list[mlmd_pb.Artifact]:
    """Artefacts of a type whose custom properties equal `where` (and that meet the raw
    filter-query conditions `extra`), newest first (by `order`), at most `limit`. A value a
    filter query cannot express (a double quote, a backslash, a control character) is compared
    in Python after the query of the other conditions."""
    where = dict(where or {})
    indexed = {key: value for key, value in where.items() if _safe(value)}
    rest = {key: value for key, value in where.items() if key not in indexed}
    parts = [f"type = {filter_literal(type_name)}"]
    parts += [property_condition(key, value) for key, value in indexed.items()]
    parts += list(extra)
    options = _options(" AND ".join(parts), None if rest else limit, order)
    found = list(store.store.get_artifacts(list_options=options))
    if rest:
        found = [a for a in found if all(_value(a, k) == v for k, v in rest.items())]
    return found[:limit] if limit else found


def _value(node: Any, key: str) -> PropertyValue | None:
    value = node.custom_properties.get(key)
    return None if value is None else lineage.property_value(value)


def newest_artifact(
    store: LineageStore,
    type_name: str,
    where: Mapping[str, PropertyValue] | None = None,
    *,
    extra: Sequence[str] = (),
) -> mlmd_pb.Artifact | None:
    """The most recently recorded artefact of a type matching `where`, or None.

    Asked first among the newest artefacts of any type (`id > newest - span`, the span growing
    sixteenfold until it covers the store): the database then starts from the primary key's
    end, not from every artefact of the type (the newest of 7,000 deployments in 1.3 ms instead
    of 7 ms on SQLite at 10,000 runs). The first window with a match holds the newest match."""
    top = store.store.get_artifacts(
        list_options=ListOptions(limit=1, order_by=OrderByField.ID, is_asc=False)
    )
    if not top:
        return None
    span = NEWEST_WINDOW
    while True:
        low = top[0].id - span
        window = [f"id > {low}"] if low > 0 else []
        found = query_artifacts(store, type_name, where, limit=1, extra=[*extra, *window])
        if found or not window:
            return found[0] if found else None
        span *= 16


def production_models(store: LineageStore, model_name: str = "") -> list[mlmd_pb.Artifact]:
    """The Models whose stage is `production` (of `model_name`, when given), newest first. The
    query selects on the stage alone, whose value `production` few models have (an index
    lookup, ~1 ms at 10,000 runs), and the name is compared here: adding the name to the
    filter query makes SQLite start from every model of that name (~30-45 ms at 10,000)."""
    found = query_artifacts(store, lineage.MODEL, {"stage": "production"})
    if model_name:
        found = [m for m in found if _value(m, "model_name") == model_name]
    return found


def in_run(run_id: str) -> str:
    """The filter-query condition: attributed to the pipeline run `run_id`."""
    return (
        f"contexts_r.type = {filter_literal(lineage.RUN_CONTEXT_TYPE)} "
        f"AND contexts_r.name = {filter_literal(run_id)}"
    )


def _next_prefix(prefix: str) -> str:
    """The smallest string greater than every string starting with the hex `prefix`."""
    last = prefix[-1]
    return prefix[:-1] + (chr(ord(last) + 1) if last != "f" else "g")


def artifacts_with_prefix(
    store: LineageStore, type_name: str, prefix: str, *, limit: int | None = None
) -> list[mlmd_pb.Artifact]:
    """Artefacts of a type whose name (its content SHA-256) starts with the hex `prefix`,
    newest first: a range on the indexed name, not a LIKE over every row."""
    prefix = prefix.lower()
    if not prefix or set(prefix) - set(_HEX):
        raise ValueError(f"{prefix!r} is not a hex digest prefix")
    rng = [f"name >= {filter_literal(prefix)}", f"name < {filter_literal(_next_prefix(prefix))}"]
    return query_artifacts(store, type_name, limit=limit, extra=rng)


def recent_runs(store: LineageStore, limit: int | None = None) -> list[mlmd_pb.Context]:
    """The pipeline runs' contexts, newest first, at most `limit`."""
    query = f"type = {filter_literal(lineage.RUN_CONTEXT_TYPE)}"
    options = _options(query, limit, OrderByField.ID)
    return list(store.store.get_contexts(list_options=options))


def producers_of(store: LineageStore, artifact_id: int) -> list[Any]:
    """The executions with an OUTPUT event on the artefact, oldest first: one filter query on
    the indexed events, never every event of the artefact (a shared input has one per run)."""
    query = f"events_0.artifact_id = {int(artifact_id)} AND events_0.type = OUTPUT"
    options = ListOptions(filter_query=query, order_by=OrderByField.ID, is_asc=True)
    return list(store.store.get_executions(list_options=options))


def producers_of_many(store: LineageStore, artifact_ids: Sequence[int]) -> list[Any]:
    """The executions with an OUTPUT event on any of the artefacts, oldest first, each once.

    On SQLite one filter query with an `IN (...)` list (3.8 ms for the three artefacts a run
    reads from outside at 10,000 runs, against 6.7 ms asked one by one: a shared input such as
    the gate policy has an INPUT event per run, which each query filters out). Elsewhere one
    `producers_of` query per artefact: MLMD's SQL for a list makes MariaDB scan the events
    (430 ms for 20 artefacts at 10,000 runs, against 2 ms per artefact)."""
    ids = sorted({int(i) for i in artifact_ids})
    if len(ids) > 1 and store.backend in SINGLE_QUERY_BACKENDS:
        listed = ", ".join(str(i) for i in ids)
        query = f"events_0.artifact_id IN ({listed}) AND events_0.type = OUTPUT"
        options = ListOptions(filter_query=query, order_by=OrderByField.ID, is_asc=True)
        unique = {e.id: e for e in store.store.get_executions(list_options=options)}
        return [unique[i] for i in sorted(unique)]
    found: dict[int, Any] = {}
    for artifact_id in ids:
        for execution in producers_of(store, artifact_id):
            found.setdefault(execution.id, execution)
    return [found[i] for i in sorted(found)]


def executions_of_run(store: LineageStore, run_id: str) -> list[Any]:
    """The executions of one run (through its context), in recording order; [] when the run
    is not recorded."""
    context = store.store.get_context_by_type_and_name(lineage.RUN_CONTEXT_TYPE, run_id)
    if context is None:
        return []
    return sorted(store.store.get_executions_by_context(context.id), key=lambda e: e.id)
