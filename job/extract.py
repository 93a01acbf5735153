"""Extract: stream a source as DataFrame chunks, never the whole input at once.

CSV goes through pyarrow's streaming reader with every column read as text
(`conform` types them later, so a bad value rejects one row, not the file).
Rows with the wrong number of fields are handed back as rejects, not dropped.
"""
from __future__ import annotations

import bz2
import csv
import glob
import gzip
import io
import json
import lzma
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import IO, Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from job.config import FileSource, SqlSource
from job.errors import ConfigError, InputError
from job.schedule import Interval

# pyarrow parses CSV a block at a time and a row must fit in one block: two
# blocks' worth of the longest value we accept, and at least 1 MiB.
MIN_BLOCK_BYTES = 1 << 20
URL_TIMEOUT_S = 60


@dataclass
class Reject:
    """A row that will not be loaded, kept with why. ROW is JSON: an object of
    the row's values, or a string holding a raw line that could not be parsed."""

    row: str
    reason: str
    location: str = ""

    def __post_init__(self) -> None:
        # A reason may quote a raw value; database text cannot hold NUL (the row is JSON, escaped already).
        if "\x00" in self.reason:
            self.reason = self.reason.replace("\x00", "\\x00")


@dataclass
class Chunk:
    frame: pd.DataFrame
    rows_read: int
    location: str
    rejects: list[Reject] = field(default_factory=list)
    bytes_read: int | None = None  # of the run's input so far, when an InputMeter can tell
    bytes_total: int | None = None


class InputMeter:
    """How far a run has read through its input files, in bytes as stored
    (compressed ones too), against their total size, known before the first
    read: what a progress bar needs. Local files read front to back only (CSV,
    JSON lines); a URL's size or a Parquet file's order of reading is not known
    up front."""

    def __init__(self, locations: list[str]) -> None:
        self.sizes = {location: os.path.getsize(location) for location in locations}
        self.total = sum(self.sizes.values())
        self._finished = 0  # bytes of the files read to their end
        self._current: IO[bytes] | None = None

    def reading(self, raw: IO[bytes]) -> None:
        self._current = raw

    def done_with(self, location: str) -> None:
        self._finished += self.sizes[location]
        self._current = None

    def position(self) -> int:
        current = self._current.tell() if self._current is not None and not self._current.closed else 0
        return min(self._finished + current, self.total)


def render_path(template: str, interval: Interval | None) -> str:
    """Fill {interval_start:%Y-%m}-style placeholders from the run interval."""
    if "{" not in template:
        return template
    if interval is None:
        raise ConfigError(f"source path {template!r} is templated with the interval; run it with --interval or --scheduled-at")
    try:
        return template.format(interval_start=interval.start, interval_end=interval.end)
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise ConfigError(f"source path {template!r}: bad placeholder ({exc}); use interval_start / interval_end") from None


def is_url(path: str) -> bool:
    return path.startswith(("http://", "https://"))


def resolve_inputs(source: FileSource, interval: Interval | None) -> list[str]:
    """The concrete files or URLs one run reads, in a stable order."""
    path = render_path(source.path, interval)
    if is_url(path):
        return [path]
    if glob.has_magic(path):
        matches = sorted(glob.glob(path))
        if not matches and not source.allow_empty:
            raise InputError(f"no file matches {path!r} (set source.allow_empty: true if that is normal)")
        return matches
    if not os.path.exists(path):
        raise InputError(f"input file {path} does not exist")
    return [path]


@contextmanager
def open_input(location: str, meter: InputMeter | None = None) -> Iterator[IO[bytes]]:
    """A binary stream of the decompressed content of a file or URL (METER follows the file's own bytes)."""
    with ExitStack() as stack:
        if is_url(location):
            raw = stack.enter_context(_open_url(location))
        else:
            try:
                raw = stack.enter_context(open(location, "rb"))
            except OSError as exc:
                raise InputError(f"cannot open {location}: {exc.strerror}") from None
            if meter is not None:
                meter.reading(raw)
        lower = location.lower().split("?")[0]
        if lower.endswith(".gz"):
            yield stack.enter_context(gzip.GzipFile(fileobj=raw))
        elif lower.endswith(".bz2"):
            yield stack.enter_context(bz2.BZ2File(raw))
        elif lower.endswith(".xz"):
            yield stack.enter_context(lzma.LZMAFile(raw))
        elif lower.endswith(".zip"):
            seekable = raw if raw.seekable() else stack.enter_context(_spool(raw))
            try:
                archive = stack.enter_context(zipfile.ZipFile(seekable))
            except zipfile.BadZipFile as exc:
                raise InputError(f"{location} is not a readable zip archive: {exc}") from None
            members = [m for m in archive.infolist() if not m.is_dir()]
            if len(members) != 1:
                names = [m.filename for m in members]
                raise InputError(f"{location} must hold exactly one file; it holds {names}")
            yield stack.enter_context(archive.open(members[0]))
        else:
            yield raw


@contextmanager
def _open_url(url: str) -> Iterator[IO[bytes]]:
    try:
        response = urllib.request.urlopen(url, timeout=URL_TIMEOUT_S)  # noqa: S310 (http/https only, checked above)
    except urllib.error.HTTPError as exc:
        raise InputError(f"cannot read {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InputError(f"cannot read {url}: {reason}") from None
    with response:
        yield response


@contextmanager
def _spool(stream: IO[bytes]) -> Iterator[IO[bytes]]:
    with tempfile.TemporaryFile() as tmp:
        shutil.copyfileobj(stream, tmp)
        tmp.seek(0)
        yield tmp


def extract(source: FileSource | SqlSource, interval: Interval | None) -> Iterator[Chunk]:
    if isinstance(source, SqlSource):
        yield from _read_sql(source, interval)
        return
    locations = resolve_inputs(source, interval)
    if source.format == "parquet":
        for location in locations:
            yield from _read_parquet(source, location)
        return
    reader = {"csv": _read_csv, "jsonl": _read_jsonl}[source.format]
    meter = None if any(map(is_url, locations)) else InputMeter(locations)
    for location in locations:
        for chunk in reader(source, location, meter):
            if meter is not None:
                chunk.bytes_read, chunk.bytes_total = meter.position(), meter.total
            yield chunk
        if meter is not None:
            meter.done_with(location)


# --- CSV ----------------------------------------------------------------------


def _read_csv(source: FileSource, location: str, meter: InputMeter | None) -> Iterator[Chunk]:
    invalid: list[Reject] = []

    def on_invalid_row(row: Any) -> str:
        where = f"{location}:{row.number}" if row.number is not None else location
        invalid.append(Reject(json.dumps(row.text), f"expected {row.expected_columns} fields, found {row.actual_columns}", where))
        return "skip"

    read_options = pacsv.ReadOptions(
        encoding=source.encoding,
        block_size=max(MIN_BLOCK_BYTES, 2 * source.max_field_bytes),
        column_names=None if source.header else source.columns,
        use_threads=False,
    )
    parse_options = pacsv.ParseOptions(delimiter=source.delimiter, invalid_row_handler=on_invalid_row, newlines_in_values=True)
    try:
        with open_input(location, meter) as stream:
            convert_options, stream = _text_columns(stream, source, location)
            reader = pacsv.open_csv(
                io.BufferedReader(stream) if isinstance(stream, _Replay) else stream,
                read_options=read_options,
                parse_options=parse_options,
                convert_options=convert_options,
            )
            _check_header(reader.schema.names, source, location)
            buffered: list[pa.RecordBatch] = []
            rows = 0
            for batch in _batches(reader, location):
                buffered.append(batch)
                rows += batch.num_rows
                if rows >= source.chunk_rows:
                    yield _csv_chunk(buffered, invalid, location)
                    buffered, invalid[:], rows = [], [], 0
            if buffered or invalid:
                yield _csv_chunk(buffered, invalid, location, reader.schema)
    except pa.ArrowInvalid as exc:
        raise InputError(_explain_arrow_error(str(exc), source, location)) from None
    except (EOFError, OSError, zipfile.BadZipFile, lzma.LZMAError) as exc:
        raise InputError(f"{location}: input ends early or is corrupt: {exc}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{location}: not valid {source.encoding} text ({exc.reason}); set source.encoding") from None


def _text_columns(stream: IO[bytes], source: FileSource, location: str) -> tuple[pacsv.ConvertOptions, IO[bytes]]:
    """Every column as text: `conform` types them later, row by row, so one bad
    value rejects one row rather than failing the whole file."""
    if source.header:
        first = stream.readline(max(MIN_BLOCK_BYTES, source.max_field_bytes))
        names = _parse_header(first, source, location)
        stream = _Replay(first, stream)
    else:
        names = list(source.columns or [])
    options = pacsv.ConvertOptions(
        null_values=source.null_values,
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
        column_types={name: pa.string() for name in names},
    )
    return options, stream


def _parse_header(first: bytes, source: FileSource, location: str) -> list[str]:
    if not first.strip():
        raise InputError(f"{location}: the file is empty (not even a header line)")
    try:
        line = first.decode(source.encoding)
    except UnicodeDecodeError as exc:
        raise InputError(f"{location}: not valid {source.encoding} text ({exc.reason}); set source.encoding") from None
    return next(csv.reader([line.lstrip("\ufeff")], delimiter=source.delimiter))


class _Replay(io.RawIOBase):
    """A read-only stream that first returns bytes already read from STREAM."""

    def __init__(self, head: bytes, stream: IO[bytes]) -> None:
        self._head, self._stream = head, stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n], self._head = self._head[:n], self._head[n:]
            return n
        data = self._stream.read(len(view))
        view[: len(data)] = data
        return len(data)


def _batches(reader: pacsv.CSVStreamingReader, location: str) -> Iterator[pa.RecordBatch]:
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        yield batch


def _csv_chunk(batches: list[pa.RecordBatch], invalid: list[Reject], location: str, schema: pa.Schema | None = None) -> Chunk:
    table = pa.Table.from_batches(batches, schema=schema) if batches or schema is not None else pa.table({})
    frame = table.to_pandas()
    return Chunk(frame=frame, rows_read=table.num_rows + len(invalid), location=location, rejects=list(invalid))


def _check_header(names: list[str], source: FileSource, location: str) -> None:
    if len(names) == 1 and source.header:
        for other in ",;\t|":
            if other != source.delimiter and other in names[0]:
                raise InputError(
                    f"{location}: the header is one column {names[0][:80]!r}; the file looks "
                    f"{_delimiter_name(other)}-separated but source.delimiter is {source.delimiter!r}"
                )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"{location}: duplicate column names in the header: {duplicates}")
    missing = [c for c in source.dtypes if c not in names]
    if missing:
        raise InputError(f"{location}: columns declared in dtypes are not in the file: {missing} (the file has {names})")


def _delimiter_name(char: str) -> str:
    return {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}[char]


def _explain_arrow_error(message: str, source: FileSource, location: str) -> str:
    if "Empty CSV file" in message:
        return f"{location}: the file is empty (not even a header line)"
    if "straddling" in message or "block size" in message:
        return f"{location}: a value is far longer than source.max_field_bytes ({source.max_field_bytes}); a broken file?"
    if "UTF8" in message or "utf8" in message.lower():
        return f"{location}: not valid {source.encoding} text; set source.encoding (e.g. latin-1)"
    return f"{location}: cannot parse as CSV: {message}"


# --- JSON lines, Parquet, SQL -------------------------------------------------------


def _read_jsonl(source: FileSource, location: str, meter: InputMeter | None) -> Iterator[Chunk]:
    try:
        with open_input(location, meter) as stream:
            text = io.TextIOWrapper(stream, encoding=source.encoding)
            for frame in pd.read_json(text, lines=True, chunksize=source.chunk_rows, dtype=False):
                yield Chunk(frame=frame, rows_read=len(frame), location=location)
    except ValueError as exc:
        raise InputError(f"{location}: not valid JSON lines: {exc}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{location}: not valid {source.encoding} text ({exc.reason}); set source.encoding") from None
    except (EOFError, OSError) as exc:
        raise InputError(f"{location}: input ends early or is corrupt: {exc}") from None


def _read_parquet(source: FileSource, location: str) -> Iterator[Chunk]:
    try:
        with ExitStack() as stack:
            stream = stack.enter_context(open_input(location))
            # Parquet reads its footer first: a URL's stream goes to a temporary file, closed with the stack.
            seekable = stream if stream.seekable() else stack.enter_context(_spool(stream))
            parquet = pq.ParquetFile(seekable)
            for batch in parquet.iter_batches(batch_size=source.chunk_rows):
                frame = batch.to_pandas()
                yield Chunk(frame=frame, rows_read=len(frame), location=location)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{location}: not a readable Parquet file: {exc}") from None


def _read_sql(source: SqlSource, interval: Interval | None) -> Iterator[Chunk]:
    import sqlalchemy as sa

    params: dict[str, Any] = {}
    if interval is not None:
        params = {"interval_start": interval.start, "interval_end": interval.end}
    elif ":interval_" in source.query:
        raise ConfigError("the source query uses :interval_start/:interval_end; run it with --interval or --scheduled-at")
    engine = sa.create_engine(source.url)
    location = f"sql:{engine.url.render_as_string(hide_password=True)}"
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True).execute(sa.text(source.query), params)
            columns = list(result.keys())
            while rows := result.fetchmany(source.chunk_rows):
                frame = pd.DataFrame.from_records(rows, columns=columns)
                yield Chunk(frame=frame, rows_read=len(frame), location=location)
    except sa.exc.OperationalError as exc:
        raise InputError(f"cannot query {location}: {exc.orig}") from None
    except sa.exc.SQLAlchemyError as exc:
        raise InputError(f"query against {location} failed: {exc}") from None
    finally:
        engine.dispose()
