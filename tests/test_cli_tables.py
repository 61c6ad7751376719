"""Output that fits: the table format fits the terminal, -o takes the format from the file's
extension, json is one document and jsonl is JSON Lines, every table command alike."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from refusaldata.schemas import TABLES

COMPARE_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "compare"


@pytest.fixture
def runs(store):
    """Three labelled runs with names (tests/fixtures/compare)."""
    for path in sorted(COMPARE_FIXTURE.glob("*.parquet")):
        (store.replace if TABLES[path.stem].replace else store.append)(path.stem, pq.read_table(path))
    return store


def table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line[:1] in "┏┃┡│└"]


@pytest.mark.parametrize("columns", [60, 100, 140])
def test_a_wide_table_fits_columns_and_never_breaks_a_header_word(cli, runs, monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    result = cli("mine", "rates")
    assert result.exit_code == 0, result.stderr
    assert max(len(line) for line in result.stdout.splitlines()) <= columns
    header = [line.strip("┃").split("┃") for line in table_lines(result.stdout) if line.startswith("┃")]
    shown = []
    for cells in zip(*header):  # a column's header, its lines joined back: only whole names come back
        name = ""
        for cell in (cell.strip() for cell in cells):
            name += cell if not name or name.endswith("_") else f" {cell}"
        shown.append(name.strip())
    names = json.loads(cli("mine", "rates", "-f", "json").stdout)[0]
    assert shown[0] == "run_name" and set(shown) <= set(names)
    if columns == 60:
        assert "not shown to fit 60 characters" in result.stdout


def test_empty_columns_hide_unless_all_columns(cli, runs):
    shown = cli("mine", "rates")
    assert shown.exit_code == 0, shown.stderr
    assert "unsafe_rate" not in "".join(table_lines(shown.stdout)) and "--all-columns shows them" in shown.stdout
    every = cli("mine", "rates", "--all-columns")
    assert "unsafe_" in "".join(table_lines(every.stdout))


def test_names_stand_for_ids_unless_ids(cli, runs):
    ids = [row["run_id"] for row in json.loads(cli("mine", "rates", "-f", "json").stdout)]
    shown = cli("mine", "rates")
    assert "self-distill" in shown.stdout and not any(run_id in shown.stdout for run_id in ids)
    with_ids = cli("mine", "rates", "--ids")
    assert all(run_id in with_ids.stdout.replace("\n", "") or run_id[:12] in with_ids.stdout for run_id in ids)


@pytest.mark.parametrize("name", ["rates.csv", "rates.json", "rates.jsonl", "rates.parquet", "rates.md",
                                  "RATES.CSV", "rates.txt"])
def test_output_takes_the_format_from_the_extension(cli, runs, tmp_path, name):
    out = tmp_path / name
    result = cli("mine", "rates", "-o", out)
    assert result.exit_code == 0, result.stderr
    suffix = out.suffix.lower()
    if suffix == ".csv":
        rows = list(csv.DictReader(io.StringIO(out.read_text())))
        assert {row["run_name"] for row in rows} == {"base", "self-distill", "teacher"}
    elif suffix == ".json":
        assert {row["run_name"] for row in json.loads(out.read_text())} == {"base", "self-distill", "teacher"}
    elif suffix == ".jsonl":
        assert [json.loads(line)["run_name"] for line in out.read_text().splitlines()] == [
            "base", "self-distill", "teacher"]
    elif suffix == ".parquet":
        assert pq.read_table(out).column("run_name").to_pylist() == ["base", "self-distill", "teacher"]
    elif suffix == ".md":
        lines = out.read_text().splitlines()
        assert lines[0].startswith("| run\\_id | run\\_name |") and lines[1].startswith("|---|---|---:|")
        assert len(lines) == 5
    else:
        assert table_lines(out.read_text())


def test_format_overrides_the_extension(cli, runs, tmp_path):
    out = tmp_path / "rates.json"
    assert cli("mine", "rates", "-o", out, "--format", "csv").exit_code == 0
    assert out.read_text().startswith("run_id,run_name,")


@pytest.mark.parametrize("name", ["rates.xlsx", "rates"])
def test_an_unknown_extension_is_one_line_error(cli, runs, tmp_path, name):
    out = tmp_path / name
    result = cli("mine", "rates", "-o", out)
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"Error: --output {out}: cannot tell the format") and "--format" in result.stderr
    assert not out.exists()


def test_json_is_one_document_and_jsonl_is_lines(cli, runs):
    document = cli("sql", "SELECT * FROM range(3) t(i)", "-f", "json")
    assert json.loads(document.stdout) == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert json.loads(cli("sql", "SELECT 1 AS i WHERE false", "-f", "json").stdout) == []
    lines = cli("sql", "SELECT * FROM range(3) t(i)", "-f", "jsonl")
    assert [json.loads(line) for line in lines.stdout.splitlines()] == [{"i": 0}, {"i": 1}, {"i": 2}]


def test_markdown_escapes_what_markdown_would_read(cli):
    result = cli("sql", "SELECT 'a | b' AS x, '<b>*no*</b>' AS y, 'two\nlines' AS z, 1.5 AS n", "-f", "md")
    assert result.stdout.splitlines() == ["| x | y | z | n |", "|---|---|---|---:|",
                                          "| a \\| b | &lt;b&gt;\\*no\\*&lt;/b&gt; | two<br>lines | 1.5 |"]


def test_every_table_command_takes_the_shared_options():
    from refusaldata.cli.main import command_tree

    shared = 0
    for path, command in command_tree().items():
        options = {opt for parameter in command.params for opt in parameter.opts}
        formats = [p for p in command.params if "--format" in p.opts and "(one array), jsonl" in (p.help or "")]
        if formats:  # the shared --format (gate prints its own; responses import's says what it reads)
            shared += 1
            assert {"--all-columns", "--ids"} <= options, path
    assert shared >= 15
    reads = command_tree()["responses import"]  # its --format says what it reads: required, no table options
    assert next(p for p in reads.params if "--format" in p.opts).required
    assert not {"--all-columns", "--ids"} & {opt for parameter in reads.params for opt in parameter.opts}
