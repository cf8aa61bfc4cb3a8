"""Flattened rows into an Arrow table with the raw table's explicit schema, every source alike.

A value that does not fit its column (a count of 2**70 for a 64-bit integer, a figure beyond a
double's range) makes pyarrow fail with "Python int too large to convert to C long" and no
word of which field: here it becomes a `ProviderError` naming the field, its value and the day,
so the run's line says what the API sent.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import pyarrow as pa

from sources.http import ProviderError

_MISFITS = (OverflowError, pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError)


def table(provider: str, rows: Sequence[Mapping[str, Any]], schema: pa.Schema, endpoint: str = "",
          window: object = None) -> pa.Table:
    """`rows` as an Arrow table of `schema`, or a ProviderError naming the value that does not fit."""
    try:
        return pa.Table.from_pylist(list(rows), schema=schema)
    except _MISFITS as exc:
        raise ProviderError(provider, misfit(rows, schema) or f"rows do not fit the raw table: {exc}",
                            endpoint, window) from None


def misfit(rows: Sequence[Mapping[str, Any]], schema: pa.Schema) -> Optional[str]:
    """The first value of `rows` that its column of `schema` cannot hold, in words; None if all fit."""
    for row in rows:
        for column in schema:
            value = row.get(column.name)
            try:
                pa.array([value], type=column.type)
            except _MISFITS:
                day = row.get("usage_date") or row.get("usage_month")
                where = f" on {day}" if day is not None else ""
                return (f"field {column.name!r} is {shown(value)}{where}, which does not fit the raw column's type "
                        f"({_type_name(column.type)})")
    return None


def shown(value: Any) -> str:
    """`value` as the API sent it, a long one (an integer of 400 digits) cut, saying how long."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}… ({len(text)} characters)"


def _type_name(arrow_type: pa.DataType) -> str:
    if pa.types.is_integer(arrow_type):
        return f"a {arrow_type.bit_width}-bit integer"
    if pa.types.is_floating(arrow_type):
        return f"a {arrow_type.bit_width}-bit floating-point number"
    return str(arrow_type)
