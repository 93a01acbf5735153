import pytest

from job.config import parse_config, load_config
from job.errors import ConfigError
from job.transform import check_user_code
from support import EXAMPLE

MINIMAL = """
pipelines:
  p:
    source: {format: csv, path: /data/x.csv}
    load: {table: t}
"""


def errors_of(text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "test.yaml", env or {})
    return str(info.value)


def test_the_shipped_example_is_valid():
    config = load_config(EXAMPLE, env={"NYCFLIGHTS13_DATA": "/data"})
    assert set(config.pipelines) == {"airlines", "airports", "flights", "flights-all"}
    flights = config.pipeline("flights")
    assert flights.load.mode == "overwrite_interval" and flights.source.path == "/data/flights.csv.zip"


def test_defaults_fill_in():
    p = parse_config(MINIMAL, env={}).pipeline("p")
    assert p.load.mode == "append" and p.source.chunk_rows == 50_000 and p.reject_budget.ratio == 0.0


def test_error_names_pipeline_key_path_and_expectation():
    text = MINIMAL.replace("{table: t}", "{table: t, mode: merge}")
    message = errors_of(text)
    assert "pipeline 'p'" in message and "load.mode" in message and "'append'" in message


def test_unknown_key_is_an_error():
    message = errors_of(MINIMAL.replace("{table: t}", "{table: t, tabel: x}"))
    assert "load.tabel: unknown key" in message


def test_unknown_transform_step_is_named_once():
    text = MINIMAL + "    transform:\n      - explode: [a]\n"
    message = errors_of(text)
    assert message.count("transform[0]") == 1 and "one of rename" in message and "explode" in message


def test_known_step_with_a_bad_argument_is_reported_precisely():
    text = MINIMAL + "    transform:\n      - dedupe: {columns: [a]}\n"
    assert "transform.0.dedupe.keys: Field required" in errors_of(text) and "dedupe.columns: unknown key" in errors_of(text)


@pytest.mark.parametrize(
    "change, expected",
    [
        ("{table: t, mode: upsert}", "needs `keys`"),
        ("{table: t, mode: overwrite_interval}", "needs `interval_column`"),
    ],
)
def test_mode_requirements(change: str, expected: str):
    assert expected in errors_of(MINIMAL.replace("{table: t}", change))


def test_bad_cron_and_timezone():
    assert "cron" in errors_of(MINIMAL + "    schedule: every day\n")
    assert "unknown time zone" in errors_of(MINIMAL + "    timezone: Mars/Olympus\n")


def test_bad_regex_rule():
    assert "not a valid regular expression" in errors_of(MINIMAL + "    validate:\n      - regex: {column: a, pattern: '('}\n")


def test_interpolation_with_default_and_missing_variable():
    text = MINIMAL.replace("/data/x.csv", "${DATA_DIR:-/fallback}/x.csv")
    assert parse_config(text, env={}).pipeline("p").source.path == "/fallback/x.csv"
    assert parse_config(text, env={"DATA_DIR": "/d"}).pipeline("p").source.path == "/d/x.csv"
    assert "DATA_DIR is not set" in errors_of(MINIMAL.replace("/data/x.csv", "${DATA_DIR}/x.csv"))


def test_invalid_yaml_and_wrong_shape():
    assert "not valid YAML" in errors_of("pipelines: [unclosed")
    assert "`pipelines:` mapping" in errors_of("- a\n- b\n")


def test_pipeline_name_must_suit_kubernetes():
    assert "lowercase" in errors_of(MINIMAL.replace("  p:", "  bad_name:"))


def test_unknown_pipeline_lists_the_known_ones():
    with pytest.raises(ConfigError, match="known: p"):
        parse_config(MINIMAL, env={}).pipeline("q")


def test_config_from_environment_text():
    config = load_config(env={"KUBETL_CONFIG_YAML": MINIMAL})
    assert list(config.pipelines) == ["p"]


def test_config_sources_in_order_of_precedence(tmp_path):
    """-c, then KUBETL_CONFIG_YAML, then KUBETL_CONFIG: the image sets KUBETL_CONFIG
    to its example, and `docker run -e KUBETL_CONFIG_YAML=...` must win over it."""
    def config_naming(name: str) -> str:
        return MINIMAL.replace("  p:", f"  {name}:")

    flag, image_default = tmp_path / "flag.yaml", tmp_path / "image.yaml"
    flag.write_text(config_naming("from-flag"))
    image_default.write_text(config_naming("from-path"))
    both = {"KUBETL_CONFIG": str(image_default), "KUBETL_CONFIG_YAML": config_naming("from-text")}
    assert list(load_config(flag, env=both).pipelines) == ["from-flag"]
    assert list(load_config(env=both).pipelines) == ["from-text"]
    assert list(load_config(env={"KUBETL_CONFIG": str(image_default), "KUBETL_CONFIG_YAML": ""}).pipelines) == ["from-path"]


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml", env={})


def test_expressions_that_do_not_parse_are_config_errors():
    text = MINIMAL + "    transform:\n      - filter: 'a >'\n      - derive: {b: 'a * 2', c: '1 +'}\n"
    message = errors_of(text)
    assert "pipeline 'p': transform.0.filter: 'a >' is not a valid expression: invalid syntax" in message
    assert "pipeline 'p': transform.1.derive: c: '1 +' is not a valid expression: invalid syntax" in message


def test_templated_path_placeholders_are_checked():
    assert "source.csv.path: bad placeholder ('month')" in errors_of(MINIMAL.replace("/data/x.csv", "'/data/{month}.csv'"))
    ok = MINIMAL.replace("/data/x.csv", "'/data/{interval_start:%Y-%m}.csv'")
    assert parse_config(ok, env={}).pipeline("p").source.path == "/data/{interval_start:%Y-%m}.csv"


def test_python_steps_that_cannot_load_are_found_before_any_run(tmp_path, monkeypatch):
    (tmp_path / "broken_steps.py").write_text("import nothing_here\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    steps = ["no_such_module:f", "etl_test_steps:no_such_function", "broken_steps:f", "etl_test_steps:double"]
    text = MINIMAL + "    transform:\n" + "".join(f"      - python: '{s}'\n" for s in steps)
    problems = check_user_code(parse_config(text, env={}))
    assert problems == [
        "pipeline 'p': transform.0.python: cannot load no_such_module:f: "
        "cannot import no_such_module: ModuleNotFoundError: No module named 'no_such_module'",
        "pipeline 'p': transform.1.python: cannot load etl_test_steps:no_such_function: "
        "module etl_test_steps has no function no_such_function",
        "pipeline 'p': transform.2.python: cannot load broken_steps:f: "
        "cannot import broken_steps: ModuleNotFoundError: No module named 'nothing_here'",
    ]


def test_table_names_must_fit_postgres_in_bytes():
    assert "load.table: must be at most 63 bytes" in errors_of(MINIMAL.replace("{table: t}", "{table: " + "é" * 32 + "}"))
    assert parse_config(MINIMAL.replace("{table: t}", "{table: " + "é" * 31 + "}"), env={}).pipeline("p").load.table == "é" * 31


def test_an_empty_reject_budget_is_an_error_not_an_unlimited_one():
    assert "pipeline 'p': reject_budget: needs `count`, `ratio` or both" in errors_of(MINIMAL + "    reject_budget: {}\n")
    assert parse_config(MINIMAL + "    reject_budget: {count: 5}\n", env={}).pipeline("p").reject_budget.count == 5
