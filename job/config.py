"""Pipeline configuration: YAML in, validated typed objects out.

Everything past `load_config` trusts these objects; every check on user input
lives here so that a bad file fails before any data moves.
"""
from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from job.errors import ConfigError
from job.expressions import compile_expression

# Column types a pipeline can declare; the loader maps them to SQL types.
ColumnType = Literal["int", "float", "numeric", "text", "bool", "date", "timestamp", "timestamptz"]

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,50}[a-z0-9])?$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- source -----------------------------------------------------------------


class FileSource(Strict):
    """A local path, a glob, or an http(s) URL; compression is inferred."""

    format: Literal["csv", "jsonl", "parquet"]
    path: str = Field(description="path, glob or http(s) URL; may use {interval_start:%Y-%m} etc.")
    chunk_rows: int = Field(50_000, ge=1, le=5_000_000)
    # CSV options
    delimiter: str = Field(",", min_length=1, max_length=1)
    encoding: str = "utf-8"
    header: bool = True
    columns: list[str] | None = Field(None, description="column names when the file has no header")
    null_values: list[str] = Field(default_factory=lambda: ["", "NA", "N/A", "NULL", "null", "NaN"])
    dtypes: dict[str, ColumnType] = Field(default_factory=dict)
    datetime_formats: dict[str, str] = Field(default_factory=dict)
    # Line breaks inside quoted values. Off by default, so that an unclosed
    # quote (which swallows every line after it) is caught as a bad row.
    multiline_values: bool = False
    # A longer text value rejects its row: usually a broken file, not data.
    max_field_bytes: int = Field(1 << 20, ge=1, le=1 << 30)
    # Whether to keep going when the glob matches no file (a quiet interval).
    allow_empty: bool = False

    @field_validator("path")
    @classmethod
    def _placeholders(cls, path: str) -> str:
        if "{" in path:  # filled from the run interval at run time; check the placeholders now
            moment = datetime(2000, 1, 1, tzinfo=timezone.utc)
            try:
                path.format(interval_start=moment, interval_end=moment)
            except (KeyError, IndexError, ValueError, AttributeError) as exc:
                raise ValueError(f"bad placeholder ({exc}); use e.g. {{interval_start:%Y-%m}} or {{interval_end:%Y-%m-%d}}") from None
        return path

    @model_validator(mode="after")
    def _columns_when_headerless(self) -> "FileSource":
        if not self.header and not self.columns:
            raise ValueError("a source with header: false needs `columns`")
        return self


class SqlSource(Strict):
    """Rows from a query against another database (any SQLAlchemy URL)."""

    format: Literal["sql"]
    url: str
    query: str = Field(description="may use :interval_start and :interval_end bind parameters")
    chunk_rows: int = Field(50_000, ge=1, le=5_000_000)
    dtypes: dict[str, ColumnType] = Field(default_factory=dict)
    datetime_formats: dict[str, str] = Field(default_factory=dict)
    multiline_values: bool = True
    max_field_bytes: int = Field(1 << 30, ge=1, le=1 << 30)


Source = Annotated[FileSource | SqlSource, Field(discriminator="format")]


# --- transform steps ----------------------------------------------------------
# Each step is a mapping with exactly one key naming the step.


class Rename(Strict):
    rename: dict[str, str]


class Select(Strict):
    select: list[str]


class Drop(Strict):
    drop: list[str]


class Cast(Strict):
    cast: dict[str, ColumnType]


class ParseDatetimeSpec(Strict):
    columns: list[str]
    format: str | None = None
    utc: bool = True


class ParseDatetime(Strict):
    parse_datetime: ParseDatetimeSpec


class FillNull(Strict):
    fill_null: dict[str, Any]


def _check_expression(expression: str) -> str:
    try:
        compile_expression(expression)
    except SyntaxError as exc:
        raise ValueError(f"{expression!r} is not a valid expression: {exc.msg}") from None
    return expression


class Filter(Strict):
    filter: str = Field(description="a pandas query expression; rows where it is false are dropped")

    @field_validator("filter")
    @classmethod
    def _parses(cls, expression: str) -> str:
        return _check_expression(expression)


class Derive(Strict):
    derive: dict[str, str] = Field(description="new column -> pandas expression over existing columns")

    @field_validator("derive")
    @classmethod
    def _parses(cls, derive: dict[str, str]) -> dict[str, str]:
        for column, expression in derive.items():
            try:
                _check_expression(expression)
            except ValueError as exc:
                raise ValueError(f"{column}: {exc}") from None
        return derive


class DedupeSpec(Strict):
    """Keep the first row of each key seen in the run; later ones are dropped and counted."""

    keys: list[str]


class Dedupe(Strict):
    dedupe: DedupeSpec


class LookupSpec(Strict):
    path: str = Field(description="CSV file (local path or URL) holding the reference table")
    match: dict[str, str] = Field(description="data column -> reference column")
    columns: dict[str, str] = Field(description="reference column -> new data column")
    on_missing: Literal["reject", "null"] = "reject"


class Lookup(Strict):
    lookup: LookupSpec


class WithinInterval(Strict):
    within_interval: str = Field(description="keep only rows whose column falls in the run interval")


class Python(Strict):
    python: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", description="package.module:function")


Step = Rename | Select | Drop | Cast | ParseDatetime | FillNull | Filter | Derive | Dedupe | Lookup | WithinInterval | Python


# --- validation rules --------------------------------------------------------


class NotNull(Strict):
    not_null: list[str]


class Unique(Strict):
    unique: list[str]


class RangeSpec(Strict):
    column: str
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounds(self) -> "RangeSpec":
        if self.min is None and self.max is None:
            raise ValueError("range needs `min`, `max` or both")
        return self


class Range(Strict):
    range: RangeSpec


class AcceptedValuesSpec(Strict):
    column: str
    values: list[Any]


class AcceptedValues(Strict):
    accepted_values: AcceptedValuesSpec


class RegexSpec(Strict):
    column: str
    pattern: str
    allow_null: bool = False

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return pattern


class Regex(Strict):
    regex: RegexSpec


Rule = NotNull | Unique | Range | AcceptedValues | Regex


class RejectBudget(Strict):
    """How many rejected rows a run tolerates before it fails."""

    count: int | None = Field(None, ge=0)
    ratio: float | None = Field(None, ge=0, le=1)

    @model_validator(mode="after")
    def _some_limit(self) -> "RejectBudget":
        if self.count is None and self.ratio is None:  # `{}` would otherwise allow any number of rejects
            raise ValueError("needs `count`, `ratio` or both (ratio: 1 allows any number of rejects)")
        return self


# --- load ---------------------------------------------------------------------


class Load(Strict):
    table: str = Field(min_length=1, max_length=63)
    schema_: str | None = Field(None, alias="schema", min_length=1, max_length=63)
    mode: Literal["append", "replace", "upsert", "overwrite_interval"] = "append"
    keys: list[str] = Field(default_factory=list)
    interval_column: str | None = None

    @field_validator("table", "schema_")
    @classmethod
    def _fits_postgres(cls, name: str | None) -> str | None:
        if name is not None and len(name.encode()) > 63:
            raise ValueError("must be at most 63 bytes in UTF-8 (PostgreSQL would silently cut a longer name)")
        return name

    @model_validator(mode="after")
    def _mode_needs(self) -> "Load":
        if self.mode == "upsert" and not self.keys:
            raise ValueError("mode upsert needs `keys`")
        if self.mode == "overwrite_interval" and not self.interval_column:
            raise ValueError("mode overwrite_interval needs `interval_column`")
        return self


class Pipeline(Strict):
    name: str
    description: str = ""
    schedule: str | None = Field(None, description="cron expression; `--scheduled-at` derives the interval from it")
    timezone: str = "UTC"
    source: Source
    transform: list[Step] = Field(default_factory=list)
    validate_: list[Rule] = Field(default_factory=list, alias="validate")
    reject_budget: RejectBudget = RejectBudget(ratio=0.0)
    load: Load

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not NAME_RE.match(name):
            raise ValueError("must be 1-52 lowercase letters, digits or '-' (it names Kubernetes objects)")
        return name

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, schedule: str | None) -> str | None:
        if schedule is not None:
            from job.schedule import check_cron

            check_cron(schedule)
        return schedule

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, tz: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {tz!r}") from exc
        return tz


class Config(Strict):
    pipelines: dict[str, Pipeline]

    def pipeline(self, name: str) -> Pipeline:
        try:
            return self.pipelines[name]
        except KeyError:
            known = ", ".join(sorted(self.pipelines)) or "none"
            raise ConfigError(f"no pipeline named {name!r} in the config (known: {known})") from None


# --- loading --------------------------------------------------------------------

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(text: str, env: dict[str, str] | None = None) -> str:
    """Replace ${VAR} and ${VAR:-default}; an unset VAR with no default is an error."""
    env = os.environ if env is None else env

    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if value not in (None, ""):
            return value
        if default is not None:
            return default
        line = text.count("\n", 0, match.start()) + 1
        raise ConfigError(f"line {line}: environment variable {name} is not set (use ${{{name}:-default}} for a default)")

    return _VAR.sub(sub, text)


def _describe(error: dict[str, Any], raw: dict[str, Any]) -> str:
    loc = [str(p) for p in error["loc"]]
    # Union members show up as loc parts named after the model; drop them.
    loc = [p for p in loc if not p[0].isupper() and not p.startswith("function-")]
    where = ".".join(loc) or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    if len(loc) >= 2 and loc[0] == "pipelines":
        return f"pipeline {loc[1]!r}: {'.'.join(loc[2:]) or '(itself)'}: {message}"
    return f"{where}: {message}"


def parse_config(text: str, source: str = "<config>", env: dict[str, str] | None = None) -> Config:
    """Parse and validate config text; raise ConfigError naming pipeline, key path and expectation."""
    try:
        raw = yaml.safe_load(interpolate(text, env))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("pipelines"), dict):
        raise ConfigError(f"{source}: expected a mapping with a `pipelines:` mapping of name -> pipeline")
    pipelines = raw["pipelines"]
    for name, spec in pipelines.items():
        if isinstance(spec, dict):
            spec.setdefault("name", name)
            if spec["name"] != name:
                raise ConfigError(f"{source}: pipeline {name!r}: name: must match its key")
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        problems = _dedupe_union_errors(exc.errors(), raw)
        raise ConfigError(f"{source}: " + "; ".join(problems)) from None


def _dedupe_union_errors(errors: list[dict[str, Any]], raw: dict[str, Any]) -> list[str]:
    """A step is a union of one-key models; pydantic reports a mismatch once per
    member. Keep the member the user meant (the step's key), or say once that
    the step kind is unknown."""
    out: list[str] = []
    for error in errors:
        loc = tuple(str(p) for p in error["loc"])
        kind = next((k for k in ("transform", "validate") if k in loc), None)
        i = loc.index(kind) if kind else -1
        if kind is None or len(loc) < i + 3 or not loc[i + 1].isdigit() or not loc[i + 2][0].isupper():
            out.append(_describe(error, raw))
            continue
        item = _dig(raw, loc[: i + 2])
        allowed = _STEP_KEYS if kind == "transform" else _RULE_KEYS
        if isinstance(item, dict) and len(item) == 1 and next(iter(item)) in allowed:
            if _member_key(loc[i + 2]) == next(iter(item)):
                out.append(_describe({**error, "loc": loc[: i + 2] + loc[i + 3 :]}, raw))
            continue
        message = (
            f"pipeline {loc[1]!r}: {kind}[{loc[i + 1]}]: expected a mapping with one key, "
            f"one of {', '.join(allowed)}; got {item!r:.120}"
        )
        if message not in out:
            out.append(message)
    return out


def _member_key(model_name: str) -> str:
    cls = _MODELS_BY_NAME.get(model_name)
    return next(iter(cls.model_fields)) if cls else ""


def _dig(raw: Any, loc: tuple[str, ...]) -> Any:
    for part in loc:
        raw = raw[int(part)] if isinstance(raw, list) else raw.get(part)
    return raw


_STEP_MODELS = [Rename, Select, Drop, Cast, ParseDatetime, FillNull, Filter, Derive, Dedupe, Lookup, WithinInterval, Python]
_RULE_MODELS = [NotNull, Unique, Range, AcceptedValues, Regex]
_MODELS_BY_NAME = {m.__name__: m for m in _STEP_MODELS + _RULE_MODELS}
_STEP_KEYS = [next(iter(m.model_fields)) for m in _STEP_MODELS]
_RULE_KEYS = [next(iter(m.model_fields)) for m in _RULE_MODELS]


def load_config(path: str | Path | None = None, env: dict[str, str] | None = None) -> Config:
    """Read config from PATH (`-c`), else $KUBETL_CONFIG_YAML (the text), else
    $KUBETL_CONFIG (a path), else ./pipelines.yaml. The text outranks the path
    because an image sets KUBETL_CONFIG to its bundled example, and
    `docker run -e KUBETL_CONFIG_YAML=...` must still mean the given text."""
    env = os.environ if env is None else env
    if path is None and env.get("KUBETL_CONFIG_YAML"):
        return parse_config(env["KUBETL_CONFIG_YAML"], "$KUBETL_CONFIG_YAML", env)
    path = Path(path or env.get("KUBETL_CONFIG") or "pipelines.yaml")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found (pass --config, or set KUBETL_CONFIG)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    return parse_config(text, str(path), env)
