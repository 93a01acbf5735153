"""Column typing: infer a type for a column, cast a column to a type.

A cast never raises on bad values: it returns the typed column and a mask of
the rows whose value could not be cast, so the caller can quarantine exactly
those rows.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from job.config import ColumnType

_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}
_ARROW_TIMESTAMPS = {"timestamp": pa.timestamp("us"), "timestamptz": pa.timestamp("us", tz="UTC")}
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_TS = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")
_ISO_TSTZ = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)$")


def _is_text(series: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(series) or series.dtype == object


def infer_type(series: pd.Series, from_values: bool = True) -> ColumnType:
    """The narrowest type that holds every non-null value of SERIES.

    With from_values=False only the dtype counts: text stays text, which is
    what a frame that has already been typed wants.
    """
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_integer_dtype(series):
        return "int"
    if pd.api.types.is_float_dtype(series):
        return "float"
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return "timestamptz"
    if pd.api.types.is_datetime64_dtype(series):
        return "timestamp"
    values = series.dropna()
    if not from_values or not len(values) or not _is_text(series):
        return "text"
    values = values.astype("string")
    # Numbers through Arrow's all-or-nothing cast: inference only needs yes or no.
    if _arrow_cast(values, pa.int64()) is not None:
        return "int"
    if _arrow_cast(values, pa.float64()) is not None:
        return "float"
    # Every value must pass, so the first one decides cheaply for most text.
    first = str(values.iloc[0])
    if first.strip().lower() in _TRUE | _FALSE and not cast(values, "bool")[1].any():
        return "bool"
    for pattern, kind in ((_ISO_DATE, "date"), (_ISO_TS, "timestamp"), (_ISO_TSTZ, "timestamptz")):
        if pattern.fullmatch(first) and values.str.fullmatch(pattern).all():
            return kind  # type: ignore[return-value]
    return "text"


def cast(series: pd.Series, kind: ColumnType, fmt: str | None = None) -> tuple[pd.Series, pd.Series]:
    """Cast SERIES to KIND; return (typed series, mask of values that failed)."""
    if _already(series, kind):
        return series, pd.Series(False, index=series.index)
    present = series.notna()
    if kind == "text":
        typed = series if pd.api.types.is_string_dtype(series) else series.astype("string")
        return typed, pd.Series(False, index=series.index)
    if kind in ("int", "float", "numeric"):
        typed = _to_number(series, kind)
    elif kind == "bool":
        typed = _to_bool(series)
    elif kind in ("timestamp", "timestamptz", "date"):
        typed = _to_datetime(series, kind, fmt)
    else:  # pragma: no cover - the config schema admits no other kind
        raise ValueError(f"unknown column type {kind}")
    failed = present & typed.isna()
    return typed, failed


def _already(series: pd.Series, kind: ColumnType) -> bool:
    """Whether SERIES already has the dtype a cast to KIND produces."""
    dtype = series.dtype
    if kind == "int":
        return isinstance(dtype, pd.Int64Dtype)
    if kind in ("float", "numeric"):
        return dtype == np.float64
    if kind == "bool":
        return isinstance(dtype, pd.BooleanDtype)
    if kind == "timestamptz":
        return isinstance(dtype, pd.DatetimeTZDtype)
    return False


def _to_number(series: pd.Series, kind: str) -> pd.Series:
    fast = _arrow_cast(series, pa.int64() if kind == "int" else pa.float64())
    if fast is not None:
        return fast
    if pd.api.types.is_bool_dtype(series):
        series = series.astype("Int64")
    numbers = pd.to_numeric(series, errors="coerce")
    if kind != "int":
        return numbers.astype("float64")
    numbers = numbers.astype("float64")
    integral = numbers.isna() | ((numbers == np.floor(numbers)) & (numbers.abs() < 2**63))
    return numbers.where(integral).astype("Int64")


def _arrow_cast(series: pd.Series, target: pa.DataType) -> pd.Series | None:
    """Arrow's vectorised text-to-number cast: ~10x pandas.to_numeric on text,
    but all-or-nothing. None when any value fails (the caller then finds which)."""
    if not pd.api.types.is_string_dtype(series):
        return None
    try:
        values = pa.array(series, from_pandas=True)
        typed = pc.cast(values, target)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    mapper = {pa.int64(): pd.Int64Dtype()}.get
    out = typed.to_pandas(types_mapper=mapper)
    out.index = series.index  # positionally: pd.Series(out, index=...) would align on labels instead
    return out


def _to_bool(series: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(series):
        return series.astype("boolean")
    lowered = series.astype("string").str.strip().str.lower()
    out = pd.Series(pd.NA, index=series.index, dtype="boolean")
    out[lowered.isin(_TRUE).fillna(False).astype(bool)] = True
    out[lowered.isin(_FALSE).fillna(False).astype(bool)] = False
    return out


def _to_datetime(series: pd.Series, kind: str, fmt: str | None) -> pd.Series:
    if isinstance(series.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(series):
        typed = series
    else:
        # Arrow's ISO 8601 cast is ~7x pandas' but takes only an offset for
        # timestamptz and none for timestamp, all or nothing; pandas does the rest.
        typed = _arrow_cast(series, _ARROW_TIMESTAMPS[kind]) if fmt is None and kind in _ARROW_TIMESTAMPS else None
        if typed is None:
            text = series.astype("string")
            typed = pd.to_datetime(text, errors="coerce", format=fmt or "ISO8601", utc=kind == "timestamptz")
    if kind == "timestamptz" and not isinstance(typed.dtype, pd.DatetimeTZDtype):
        typed = typed.dt.tz_localize("UTC")
    if kind != "timestamptz" and isinstance(typed.dtype, pd.DatetimeTZDtype):
        typed = typed.dt.tz_convert("UTC").dt.tz_localize(None)
    if kind == "date":
        typed = typed.dt.normalize()
    return typed
