"""Typing API pages into Arrow columns: a whole page at once, exact about what each column accepts.

Typing value by value in Python was the main cost of a snapshot (tens of calls per audience). A page is
typed column by column instead: Arrow infers each column's type in C, and a column whose values are all
of the kinds the column accepts is taken as it is. Only a column that holds anything else goes through
``coerce`` value by value, which converts what may be converted (a digit string to an integer, a
number to a string) and refuses, naming the value, what may not: a snapshot never guesses.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson
import pyarrow as pa

from audit_assets.columns import Column, ColumnType

# Arrow's default pool (mimalloc) keeps what a snapshot frees for itself; the system allocator gives it
# back (with malloc_trim, see snapshot.py), so a large snapshot's memory is free again before the load.
pa.set_memory_pool(pa.system_memory_pool())

ARROW_TYPES: dict[ColumnType, pa.DataType] = {
    ColumnType.STRING: pa.string(),
    ColumnType.INTEGER: pa.int64(),
    ColumnType.FLOAT: pa.float64(),
    ColumnType.BOOLEAN: pa.bool_(),
    ColumnType.JSON: pa.string(),  # JSON text; the warehouse parses it into JSON / VARIANT
    ColumnType.DATE: pa.date32(),
    ColumnType.TIMESTAMP_TZ: pa.timestamp("us", tz="UTC"),
}
# The Arrow types a column takes as inferred, without looking at each value.
_TAKEN_AS_INFERRED: dict[ColumnType, frozenset[pa.DataType]] = {
    ColumnType.STRING: frozenset({pa.string()}),
    ColumnType.INTEGER: frozenset({pa.int64()}),
    ColumnType.FLOAT: frozenset({pa.float64(), pa.int64()}),
    ColumnType.BOOLEAN: frozenset({pa.bool_()}),
}
_INTEGER_TEXT = re.compile(r"^-?\d+$")


def arrow_schema(columns: Sequence[Column]) -> pa.Schema:
    return pa.schema([pa.field(c.name, ARROW_TYPES[c.type]) for c in columns])


def json_text(value: Any) -> bytes:
    """Compact UTF-8 JSON, as stored in ht_raw and JSON columns (orjson: several times json.dumps' speed)."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError as exc:  # e.g. an integer beyond 64 bits
        raise ValueError(str(exc)) from None


def json_column(values: list[Any]) -> pa.Array:
    """Each value as JSON text (None stays null), like ``json_text`` but without a Python call per
    value: a run's JSON columns and ht_raw are over a million values for 200k audiences."""
    dumps = orjson.dumps
    try:
        return pa.array([None if v is None else dumps(v) for v in values], type=pa.string())
    except orjson.JSONEncodeError as exc:
        raise ValueError(str(exc)) from None


def typed_column(values: list[Any], kind: ColumnType) -> pa.Array:
    """One page's values of one field as an Arrow array of the column's type; ValueError names a bad value."""
    arrow_type = ARROW_TYPES[kind]
    if kind is ColumnType.JSON:
        return json_column(values)
    try:
        inferred = pa.array(values)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        inferred = None  # mixed kinds, or an integer beyond 64 bits: value by value says which
    if inferred is not None:
        if inferred.type == pa.null():
            return pa.nulls(len(values), type=arrow_type)
        if inferred.type in _TAKEN_AS_INFERRED.get(kind, ()):
            return inferred.cast(arrow_type, safe=False)  # FLOAT from int64: float(), as coerce does
    return pa.array([coerce(v, kind) for v in values], type=arrow_type)


def _as_integer(value: Any) -> int | None:
    """The integer a JSON value spells, or None: ints, integral floats, and digit strings (Google's int64)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER_TEXT.match(value):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def coerce(value: Any, kind: ColumnType) -> Any:
    """Convert one API value to its column's type, or raise ValueError: never guess."""
    if value is None:
        return None
    if kind is ColumnType.JSON:
        return json_text(value)
    if kind is ColumnType.STRING:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
    elif kind is ColumnType.INTEGER:
        number = _as_integer(value)
        if number is not None:
            if -(2**63) <= number < 2**63:
                return number
            raise ValueError(f"{value!r} is outside the signed 64-bit integer range")
    elif kind is ColumnType.FLOAT:
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:
                raise ValueError("a number too large for a double") from None
    elif kind is ColumnType.BOOLEAN and isinstance(value, bool):
        return value
    raise ValueError(f"expected {kind.value}, got {type(value).__name__}")
