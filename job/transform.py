"""Transform: typing and the declarative steps, as functions on DataFrames.

Each step takes a frame and returns a `StepResult`: the frame that goes on,
the rows it rejected (quarantined with a reason) and how many rows it dropped
on purpose (a filter, a dedupe). No step does I/O except `lookup`, which reads
its reference table once per run, and `python`, which is the user's own code.
"""
from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from job import config as c
from job import pgcsv
from job.errors import ConfigError, InputError, StepFailed, one_line
from job.expressions import compile_expression, evaluate
from job.extract import Reject, is_url, open_input
from job.schedule import Interval
from job.types import cast, infer_type


@dataclass
class StepResult:
    frame: pd.DataFrame
    rejects: list[Reject] = field(default_factory=list)
    dropped: int = 0


def rows_as_json(frame: pd.DataFrame) -> list[str]:
    """One JSON object per row, serialised by pandas in C (per-row Python is slow).

    Dates and times go in as ISO 8601 text to the microsecond, UTC as "Z":
    pandas' own JSON dates stop at the millisecond (and take twice as long).
    """
    if frame.empty:
        return []
    columns = {name: frame[name] for name in frame.columns}
    for name, column in columns.items():
        if pd.api.types.is_datetime64_any_dtype(column):
            text = pgcsv.render_temporal(pa.chunked_array([pa.Array.from_pandas(column)]), sep="T", utc="Z")
            columns[name] = text.to_pandas()
    text = frame_of(columns, frame.index).to_json(orient="records", lines=True, date_format="iso", default_handler=str)
    return text.rstrip("\n").split("\n")  # JSON escapes newlines inside values


def reject_rows(frame: pd.DataFrame, reasons: pd.Series, location: str = "") -> tuple[pd.DataFrame, list[Reject]]:
    """Split FRAME into rows with no reason and Rejects for rows with one."""
    bad = reasons.notna()
    if not bad.any():
        return frame, []
    rejects = [Reject(row, reason, location) for row, reason in zip(rows_as_json(frame.loc[bad]), reasons[bad])]
    return frame.loc[~bad], rejects


def frame_of(columns: dict[str, pd.Series], index: pd.Index) -> pd.DataFrame:
    """A frame of COLUMNS, which are already in INDEX's row order: taken by
    position, not aligned label by label (which costs more than the rest of
    building it on a filtered index)."""
    return pd.DataFrame({name: column.array for name, column in columns.items()}, index=index, copy=False)


def add_reason(reasons: pd.Series, mask: pd.Series, reason: str | pd.Series) -> pd.Series:
    """Record REASON for the rows in MASK, keeping reasons already there."""
    if not mask.any():
        return reasons
    new = reason[mask] if isinstance(reason, pd.Series) else pd.Series(reason, index=mask[mask].index)
    merged = reasons.copy()
    old = merged[mask]
    merged[mask] = old.where(old.isna(), old + "; " + new).fillna(new)
    return merged


class SeenKeys:
    """The keys a run has seen so far, across chunks (for dedupe and the unique
    rule): 64-bit hashes in sorted numpy arrays, 8 bytes a distinct key where a
    Python set of ints takes about 70. New keys join the last array until it
    holds RUN_KEYS, then start another, so adding keys never copies more than
    one array (5M keys: 40 MB held, where one ever-growing array briefly
    needed twice that for every chunk's insert)."""

    RUN_KEYS = 1 << 20

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []

    def repeats(self, keys: pd.DataFrame) -> np.ndarray:
        """A mask of the rows whose key came earlier (in this frame or a previous
        one); the keys of the other rows are remembered."""
        hashes = pd.util.hash_pandas_object(keys, index=False).to_numpy()
        repeat = pd.Series(hashes).duplicated().to_numpy()
        for run in self._runs:
            positions = np.minimum(np.searchsorted(run, hashes), len(run) - 1)
            repeat = repeat | (run[positions] == hashes)
        new = np.sort(hashes[~repeat])
        if len(new) and self._runs and len(self._runs[-1]) + len(new) <= self.RUN_KEYS:
            last = self._runs.pop()
            new = np.insert(last, np.searchsorted(last, new), new)
        if len(new):
            self._runs.append(new)
        return repeat

    @property
    def nbytes(self) -> int:
        return sum(int(run.nbytes) for run in self._runs)


class Schema:
    """Column types fixed by the first chunk (or declared), applied to every chunk.

    Also the source's sanity limits on text values: an over-long value or a
    line break where none is expected marks a broken file, and rejects the row.
    """

    def __init__(self, source: c.FileSource | c.SqlSource) -> None:
        self.types: dict[str, c.ColumnType] = dict(source.dtypes)
        self.formats = source.datetime_formats
        self.max_field_bytes = source.max_field_bytes
        self.multiline_values = source.multiline_values
        self._inferred = False

    def conform(self, frame: pd.DataFrame, location: str = "") -> StepResult:
        if not self._inferred:
            for column in frame.columns:
                self.types.setdefault(column, infer_type(frame[column]))
            self._inferred = True
        text_columns = [col for col in frame.columns if self.types.get(col, "text") == "text"]
        reasons = self._check_text(frame, text_columns)  # other columns fail their cast instead
        typed = {}
        for column in frame.columns:
            kind = self.types.get(column, "text")
            typed[column], failed = cast(frame[column], kind, self.formats.get(column))
            if failed.any():
                raw = frame[column].astype("string")
                reasons = add_reason(reasons, failed, f"{column}: cannot read '" + raw.str.slice(0, 40) + f"' as {kind}")
        frame = frame_of(typed, frame.index)
        frame, rejects = reject_rows(frame, reasons, location)
        return StepResult(frame, rejects)

    def _check_text(self, frame: pd.DataFrame, columns: list[str]) -> pd.Series:
        reasons = pd.Series(pd.NA, index=frame.index, dtype="string")
        for column in columns:
            values = frame[column]
            if not pd.api.types.is_string_dtype(values):
                continue
            lengths = values.str.len()
            too_long = (lengths > self.max_field_bytes).fillna(False).astype(bool)
            reasons = add_reason(reasons, too_long, f"{column} is longer than source.max_field_bytes ({self.max_field_bytes})")
            if not self.multiline_values:
                broken = values.str.contains("\n", regex=False).fillna(False).astype(bool)
                reasons = add_reason(
                    reasons, broken,
                    f"{column} holds a line break: an unclosed quote? (set source.multiline_values: true if expected)",
                )
        return reasons


# --- steps ---------------------------------------------------------------------


class Steps:
    """The pipeline's transform list, bound to one run (interval, lookup tables)."""

    def __init__(self, steps: list[c.Step], interval: Interval | None) -> None:
        self.interval = interval
        self._seen_keys: dict[int, SeenKeys] = {}
        self._functions = [self._bind(i, step) for i, step in enumerate(steps)]

    def apply(self, frame: pd.DataFrame, location: str = "") -> StepResult:
        rejects: list[Reject] = []
        dropped = 0
        for function in self._functions:
            result = function(frame)
            frame = result.frame
            rejects.extend(Reject(r.row, r.reason, location) for r in result.rejects)
            dropped += result.dropped
        return StepResult(frame, rejects, dropped)

    def _bind(self, index: int, step: c.Step) -> Callable[[pd.DataFrame], StepResult]:
        handler = getattr(self, f"_{type(step).__name__.lower()}")
        prepared = handler(index, step)
        name = next(iter(type(step).model_fields))  # the step's key in the config

        def run(frame: pd.DataFrame) -> StepResult:
            try:
                return prepared(frame)
            except KeyError as exc:
                raise InputError(f"transform[{index}] ({name}): no column {exc} (columns: {list(frame.columns)})") from None

        return run

    def _rename(self, _: int, step: c.Rename) -> Callable[[pd.DataFrame], StepResult]:
        def run(frame: pd.DataFrame) -> StepResult:
            _require(frame, step.rename)
            return StepResult(frame.rename(columns=step.rename))

        return run

    def _select(self, _: int, step: c.Select) -> Callable[[pd.DataFrame], StepResult]:
        def run(frame: pd.DataFrame) -> StepResult:
            _require(frame, step.select)
            return StepResult(frame[list(step.select)])

        return run

    def _drop(self, _: int, step: c.Drop) -> Callable[[pd.DataFrame], StepResult]:
        def run(frame: pd.DataFrame) -> StepResult:
            _require(frame, step.drop)
            return StepResult(frame.drop(columns=list(step.drop)))

        return run

    def _cast(self, _: int, step: c.Cast) -> Callable[[pd.DataFrame], StepResult]:
        def run(frame: pd.DataFrame) -> StepResult:
            frame = frame.copy()
            reasons = pd.Series(pd.NA, index=frame.index, dtype="string")
            for column, kind in step.cast.items():
                frame[column], failed = cast(frame[column], kind)
                reasons = add_reason(reasons, failed, f"{column}: cannot cast to {kind}")
            frame, rejects = reject_rows(frame, reasons)
            return StepResult(frame, rejects)

        return run

    def _parsedatetime(self, _: int, step: c.ParseDatetime) -> Callable[[pd.DataFrame], StepResult]:
        spec = step.parse_datetime

        def run(frame: pd.DataFrame) -> StepResult:
            frame = frame.copy()
            reasons = pd.Series(pd.NA, index=frame.index, dtype="string")
            for column in spec.columns:
                frame[column], failed = cast(frame[column], "timestamptz" if spec.utc else "timestamp", spec.format)
                reasons = add_reason(reasons, failed, f"{column}: not a date-time in format {spec.format or 'ISO 8601'}")
            frame, rejects = reject_rows(frame, reasons)
            return StepResult(frame, rejects)

        return run

    def _fillnull(self, _: int, step: c.FillNull) -> Callable[[pd.DataFrame], StepResult]:
        def run(frame: pd.DataFrame) -> StepResult:
            _require(frame, step.fill_null)  # pandas would skip a misspelt column silently
            return StepResult(frame.fillna(step.fill_null))

        return run

    def _filter(self, index: int, step: c.Filter) -> Callable[[pd.DataFrame], StepResult]:
        code = compile_expression(step.filter)  # the config has checked that it parses

        def run(frame: pd.DataFrame) -> StepResult:
            keep = _evaluate(frame, code, step.filter, index, "filter")
            keep = keep.fillna(False).astype(bool)
            return StepResult(frame.loc[keep], dropped=int((~keep).sum()))

        return run

    def _derive(self, index: int, step: c.Derive) -> Callable[[pd.DataFrame], StepResult]:
        codes = {column: compile_expression(expr) for column, expr in step.derive.items()}

        def run(frame: pd.DataFrame) -> StepResult:
            frame = frame.copy()
            for column, expression in step.derive.items():
                frame[column] = _evaluate(frame, codes[column], expression, index, f"derive {column}")
            return StepResult(frame)

        return run

    def _dedupe(self, index: int, step: c.Dedupe) -> Callable[[pd.DataFrame], StepResult]:
        seen = self._seen_keys.setdefault(index, SeenKeys())

        def run(frame: pd.DataFrame) -> StepResult:
            repeat = seen.repeats(frame[step.dedupe.keys])
            return StepResult(frame.loc[~repeat], dropped=int(repeat.sum()))

        return run

    def _lookup(self, index: int, step: c.Lookup) -> Callable[[pd.DataFrame], StepResult]:
        spec = step.lookup
        reference = _read_reference(spec, index)

        def run(frame: pd.DataFrame) -> StepResult:
            left = frame.reset_index(drop=True)
            keys = {data_col: left[data_col].astype("string") for data_col in spec.match}
            merged = pd.DataFrame(keys).merge(reference, how="left", left_on=list(spec.match), right_on=list(spec.match.values()))
            found = merged["__found__"].notna()
            out = left.copy()
            for ref_col, new_col in spec.columns.items():
                out[new_col] = merged[ref_col].values
            if spec.on_missing == "null":
                return StepResult(out)
            described = [f"{column}=" + keys[column].fillna("null") for column in spec.match]  # per row: k1=v1 and k2=v2
            reasons = pd.Series(pd.NA, index=out.index, dtype="string")
            reasons = add_reason(reasons, ~found, "lookup: no match for " + _joined(described, " and "))
            kept, rejects = reject_rows(out, reasons)
            return StepResult(kept, rejects)

        return run

    def _withininterval(self, index: int, step: c.WithinInterval) -> Callable[[pd.DataFrame], StepResult]:
        if self.interval is None:
            raise ConfigError(f"transform[{index}] within_interval needs a run interval: pass --interval or --scheduled-at")
        start, end = self.interval.start, self.interval.end

        def run(frame: pd.DataFrame) -> StepResult:
            moments = frame[step.within_interval]
            if not isinstance(moments.dtype, pd.DatetimeTZDtype):
                moments, _ = cast(moments, "timestamptz")
            keep = ((moments >= start) & (moments < end)).fillna(False).astype(bool)
            return StepResult(frame.loc[keep.values], dropped=int((~keep).sum()))

        return run

    def _python(self, index: int, step: c.Python) -> Callable[[pd.DataFrame], StepResult]:
        try:
            function = load_function(step.python)
        except ConfigError as exc:
            raise ConfigError(f"transform[{index}] python: {exc}") from None

        def run(frame: pd.DataFrame) -> StepResult:
            try:
                out = function(frame)
            except Exception as exc:  # the user's code: any error is possible, and all are this step's failure
                raise StepFailed(f"transform[{index}] python {step.python} raised {type(exc).__name__}: {one_line(exc)}") from exc
            if not isinstance(out, pd.DataFrame):
                raise InputError(f"transform[{index}] python: {step.python} returned {type(out).__name__}, not a DataFrame")
            return StepResult(out)

        return run


def _require(frame: pd.DataFrame, columns: Any) -> None:
    """Raise KeyError (reported as 'no column') for the first of COLUMNS not in FRAME."""
    missing = [col for col in columns if col not in frame.columns]
    if missing:
        raise KeyError(missing[0])


def _joined(parts: list[pd.Series], separator: str) -> pd.Series:
    joined = parts[0]
    for part in parts[1:]:
        joined = joined + separator + part
    return joined


def load_function(target: str) -> Callable[[pd.DataFrame], Any]:
    """The function a `python: package.module:function` step names."""
    module_name, _, function_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # importing runs the user's module: anything can go wrong
        raise ConfigError(f"cannot load {target}: cannot import {module_name}: {type(exc).__name__}: {one_line(exc)}") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ConfigError(f"cannot load {target}: module {module_name} has no function {function_name}")
    return function


def check_user_code(config: c.Config) -> list[str]:
    """What `validate` adds to the schema: every `python:` step's function can be loaded.
    (A run loads them the same way, before reading any data.)"""
    problems = []
    for pipeline in config.pipelines.values():
        for index, step in enumerate(pipeline.transform):
            if isinstance(step, c.Python):
                try:
                    load_function(step.python)
                except ConfigError as exc:
                    problems.append(f"pipeline {pipeline.name!r}: transform.{index}.python: {exc}")
    return problems


def _evaluate(frame: pd.DataFrame, code: Any, expression: str, index: int, what: str) -> pd.Series:
    try:
        return evaluate(code, frame)
    except NameError as exc:
        raise ConfigError(f"transform[{index}] {what}: {expression!r}: {exc} (columns: {list(frame.columns)})") from None
    except Exception as exc:  # a bad expression can raise almost anything
        raise ConfigError(f"transform[{index}] {what}: cannot evaluate {expression!r}: {exc}") from None


def _read_reference(spec: c.LookupSpec, index: int) -> pd.DataFrame:
    if not is_url(spec.path) and not os.path.exists(spec.path):
        raise InputError(f"transform[{index}] lookup: reference file {spec.path} does not exist")
    with open_input(spec.path) as stream:
        try:
            reference = pd.read_csv(stream, dtype=str, keep_default_na=False)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"transform[{index}] lookup: cannot read {spec.path}: {exc}") from None
    needed = list(spec.match.values()) + list(spec.columns)
    missing = [col for col in needed if col not in reference.columns]
    if missing:
        raise ConfigError(f"transform[{index}] lookup: {spec.path} has no column(s) {missing} (it has {list(reference.columns)})")
    reference = reference[list(dict.fromkeys(needed))].drop_duplicates(subset=list(spec.match.values()), keep="last")
    reference["__found__"] = True
    return reference.astype({col: "string" for col in spec.match.values()})
