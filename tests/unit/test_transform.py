import json
from datetime import datetime, timezone

import pandas as pd
import pytest

from job import config as c
from job.config import parse_config
from job.errors import ConfigError, InputError, RejectBudgetExceeded
from job.schedule import Interval
from job.transform import Schema, SeenKeys, Steps
from job.types import cast, infer_type
from job.validate import Rules, check_budget


def steps_of(yaml_steps: str, interval: Interval | None = None) -> Steps:
    text = f"pipelines:\n  p:\n    source: {{format: csv, path: x}}\n    load: {{table: t}}\n    transform:\n{yaml_steps}"
    return Steps(parse_config(text, env={}).pipeline("p").transform, interval)


def rules_of(yaml_rules: str) -> Rules:
    text = f"pipelines:\n  p:\n    source: {{format: csv, path: x}}\n    load: {{table: t}}\n    validate:\n{yaml_rules}"
    return Rules(parse_config(text, env={}).pipeline("p").validate_)


def text_frame(**columns: list) -> pd.DataFrame:
    return pd.DataFrame({k: pd.Series(v, dtype="string") for k, v in columns.items()})


def test_cast_reports_exactly_the_values_that_fail():
    typed, failed = cast(pd.Series(["1", "2.0", "x", None, "2.5"], dtype="string"), "int")
    assert list(failed) == [False, False, True, False, True]
    assert typed.iloc[1] == 2 and pd.isna(typed.iloc[3])


@pytest.mark.parametrize("kind", ["int", "float"])
def test_cast_keeps_the_index_of_a_later_chunk(kind):
    """Chunks after the first (JSON lines, or any frame after a filter) do not start at index 0."""
    typed, failed = cast(pd.Series(["2", "3"], index=[2, 7], dtype="string"), kind)
    assert typed.index.tolist() == [2, 7] and typed.tolist() == [2, 3] and not failed.any()


@pytest.mark.parametrize(
    "values, kind",
    [(["1", "2"], "int"), (["1.5", "2"], "float"), (["true", "no"], "bool"), (["2013-01-01"], "date"),
     (["2013-01-01 05:00"], "timestamp"), (["2013-01-01T10:00:00Z"], "timestamptz"), (["a", "1"], "text"), ([None, None], "text")],
)
def test_infer_type(values, kind):
    assert infer_type(pd.Series(values, dtype="string")) == kind


def test_schema_rejects_bad_values_and_keeps_typing_later_chunks_the_same_way():
    source = c.FileSource(format="csv", path="x", dtypes={"n": "int"})
    schema = Schema(source)
    first = schema.conform(text_frame(n=["1", "oops"], f=["1.5", "2"]))
    assert len(first.frame) == 1 and "n: cannot read 'oops' as int" in first.rejects[0].reason
    second = schema.conform(text_frame(n=["3"], f=["abc"]))  # f was inferred float from chunk one
    assert len(second.frame) == 0 and "f: cannot read 'abc' as float" in second.rejects[0].reason


def test_rename_fill_null_derive_filter_drop():
    steps = steps_of(
        "      - rename: {a: x}\n"
        "      - fill_null: {b: 0}\n"
        "      - derive: {c: \"x * 10 + b\", label: \"s + '-' + s\"}\n"
        "      - filter: \"c > 10 and not (s == 'skip')\"\n"
        "      - drop: [s]\n"
    )
    frame = pd.DataFrame({"a": [1, 2, 3], "b": [None, 5.0, 1.0], "s": ["k", "k", "skip"]})
    out = steps.apply(frame)
    assert list(out.frame.columns) == ["x", "b", "c", "label"]
    assert out.frame["c"].tolist() == [25.0] and out.frame["label"].tolist() == ["k-k"] and out.dropped == 2


def test_select_keeps_the_listed_columns_in_the_listed_order():
    out = steps_of("      - select: [c, a]\n").apply(pd.DataFrame({"a": [1], "b": [2], "c": [3]}))
    assert list(out.frame.columns) == ["c", "a"] and out.frame.iloc[0].tolist() == [3, 1]


@pytest.mark.parametrize("step", ["select: [a, z]", "drop: [z]", "fill_null: {z: 0}", "cast: {z: int}", "parse_datetime: {columns: [z]}"])
def test_a_step_naming_a_missing_column_says_which_and_what_there_is(step):
    with pytest.raises(InputError) as raised:
        steps_of(f"      - {step}\n").apply(pd.DataFrame({"a": [1]}))
    assert str(raised.value) == f"transform[0] ({step.split(':')[0]}): no column 'z' (columns: ['a'])"


def test_cast_types_columns_and_rejects_only_the_rows_that_fail():
    steps = steps_of("      - cast: {n: int, x: float, ok: bool}\n")
    out = steps.apply(text_frame(n=["1", "two", "3"], x=["1.5", "2", "x"], ok=["yes", "no", None]))
    assert str(out.frame["n"].dtype) == "Int64" and out.frame["x"].dtype == "float64" and str(out.frame["ok"].dtype) == "boolean"
    assert out.frame["n"].tolist() == [1] and out.frame["x"].tolist() == [1.5] and out.frame["ok"].tolist() == [True]
    assert [r.reason for r in out.rejects] == ["n: cannot cast to int", "x: cannot cast to float"]
    assert json.loads(out.rejects[0].row) == {"n": None, "x": 2.0, "ok": False}


def test_parse_datetime_with_a_format_to_utc_or_naive():
    frame = text_frame(day=["05/01/2013 06:30", "31/02/2013 00:00", None])
    utc = steps_of("      - parse_datetime: {columns: [day], format: '%d/%m/%Y %H:%M'}\n").apply(frame)
    assert utc.frame["day"].tolist()[0] == pd.Timestamp("2013-01-05T06:30", tz="UTC") and pd.isna(utc.frame["day"].iloc[1])
    assert len(utc.frame) == 2  # a null stays null; only the impossible date is rejected
    assert [r.reason for r in utc.rejects] == ["day: not a date-time in format %d/%m/%Y %H:%M"]
    naive = steps_of("      - parse_datetime: {columns: [day], utc: false}\n").apply(text_frame(day=["2013-01-05T06:30:00"]))
    assert naive.frame["day"].tolist() == [pd.Timestamp("2013-01-05T06:30")] and naive.frame["day"].dt.tz is None


def test_dedupe_works_across_chunks():
    steps = steps_of("      - dedupe: {keys: [k]}\n")
    first = steps.apply(pd.DataFrame({"k": [1, 1, 2]}))
    second = steps.apply(pd.DataFrame({"k": [2, 3]}))
    assert first.frame["k"].tolist() == [1, 2] and second.frame["k"].tolist() == [3]
    assert first.dropped + second.dropped == 2


def test_seen_keys_finds_repeats_within_and_across_chunks_in_8_bytes_a_key():
    seen = SeenKeys()
    first = pd.DataFrame({"a": [1, 1, 2, None, None], "b": ["x", "x", "x", "y", "y"]})
    assert seen.repeats(first).tolist() == [False, True, False, False, True]
    second = pd.DataFrame({"a": [2, 3, None, 1], "b": ["x", "x", "y", "z"]}, index=[7, 8, 9, 10])
    assert seen.repeats(second).tolist() == [True, False, True, False]
    many = pd.DataFrame({"a": range(100_000), "b": "k"})
    assert not seen.repeats(many.iloc[::2]).any() and seen.repeats(many).tolist() == [True, False] * 50_000
    assert seen.nbytes == 8 * (5 + 100_000)


def test_seen_keys_past_one_array(monkeypatch):
    monkeypatch.setattr(SeenKeys, "RUN_KEYS", 1000)
    seen = SeenKeys()
    for start in range(0, 5000, 700):  # chunks that straddle the arrays' limits
        chunk = pd.DataFrame({"k": range(start, start + 700)})
        assert not seen.repeats(chunk).any()
    assert seen.repeats(pd.DataFrame({"k": [0, 999, 1000, 5599, 5600, 5600]})).tolist() == [True, True, True, True, False, True]
    assert seen.nbytes == 8 * 5601 and len(seen._runs) > 4


def test_lookup_adds_columns_and_rejects_missing_keys(tmp_path):
    ref = tmp_path / "ref.csv"
    ref.write_text("code,name\nAA,American\nUA,United\n")
    steps = steps_of(f"      - lookup: {{path: {ref}, match: {{carrier: code}}, columns: {{name: airline}}}}\n")
    out = steps.apply(pd.DataFrame({"carrier": ["UA", "ZZ", "AA"], "n": [1, 2, 3]}))
    assert out.frame["airline"].tolist() == ["United", "American"]
    assert len(out.rejects) == 1 and "no match for carrier=ZZ" in out.rejects[0].reason


def test_lookup_on_two_keys_names_each_keys_value_in_the_reason(tmp_path):
    ref = tmp_path / "ref.csv"
    ref.write_text("origin,dest,miles\nJFK,LAX,2475\n")
    steps = steps_of(f"      - lookup: {{path: {ref}, match: {{o: origin, d: dest}}, columns: {{miles: distance}}}}\n")
    out = steps.apply(pd.DataFrame({"o": ["JFK", "JFK", None], "d": ["LAX", "SFO", "LAX"]}))
    assert out.frame["distance"].tolist() == ["2475"]
    assert [r.reason for r in out.rejects] == ["lookup: no match for o=JFK and d=SFO", "lookup: no match for o=null and d=LAX"]


def test_within_interval_keeps_only_the_runs_rows():
    span = Interval(datetime(2013, 1, 1, tzinfo=timezone.utc), datetime(2013, 2, 1, tzinfo=timezone.utc))
    steps = steps_of("      - within_interval: ts\n", span)
    frame = pd.DataFrame({"ts": pd.to_datetime(["2012-12-31T23:59:59Z", "2013-01-01T00:00:00Z", "2013-02-01T00:00:00Z"])})
    out = steps.apply(frame)
    assert len(out.frame) == 1 and out.dropped == 2


def test_within_interval_without_an_interval_is_a_config_error():
    with pytest.raises(ConfigError, match="needs a run interval"):
        steps_of("      - within_interval: ts\n")


def test_python_step_runs_user_code():
    steps = steps_of("      - python: 'etl_test_steps:double'\n")
    assert steps.apply(pd.DataFrame({"v": [1, 2]})).frame["v"].tolist() == [2, 4]


def test_python_step_that_cannot_load_is_a_config_error():
    with pytest.raises(ConfigError, match="cannot load"):
        steps_of("      - python: 'no_such_module:f'\n")


def test_unknown_column_in_expression_lists_columns():
    steps = steps_of("      - derive: {y: 'nope + 1'}\n")
    with pytest.raises(ConfigError, match="columns: \\['a'\\]"):
        steps.apply(pd.DataFrame({"a": [1]}))


def test_rules_collect_every_reason_for_a_row():
    rules = rules_of(
        "      - not_null: [a]\n"
        "      - range: {column: n, min: 0, max: 10}\n"
        "      - accepted_values: {column: s, values: [x, y]}\n"
        "      - regex: {column: s, pattern: '^[a-z]$'}\n"
        "      - unique: [n]\n"
    )
    frame = pd.DataFrame({"a": [1, None, 3, 4], "n": [1, 20, 5, 5], "s": ["x", "Z", "y", "y"]})
    out = rules.check(frame)
    assert out.frame.index.tolist() == [0, 2]
    reasons = {json.loads(r.row)["n"]: r.reason for r in out.rejects}
    assert reasons[20] == "a is null; n above 10; s not one of ['x', 'y']; s does not match ^[a-z]$"
    assert reasons[5] == "duplicate n"


def test_budget():
    check_budget(c.RejectBudget(ratio=0.1), 1, 10, final=True)
    with pytest.raises(RejectBudgetExceeded, match="over the budget of 10.00%"):
        check_budget(c.RejectBudget(ratio=0.1), 2, 10, final=True)
    with pytest.raises(RejectBudgetExceeded, match="over the budget of 3"):
        check_budget(c.RejectBudget(count=3), 4, 1000, final=False)
