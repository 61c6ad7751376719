"""A CLI without surprises: one name per concept (old names kept), choices listed, options that
do not apply refused, a run's name fixed once it exists, short terminal tables."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from refusaldata.errors import InputError
from refusaldata.generate import check_run_name
from refusaldata.keys import prompt_id
from refusaldata.schemas import TABLES

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def load(store, folder: str) -> None:
    for path in sorted((FIXTURES / folder).glob("*.parquet")):
        (store.replace if TABLES[path.stem].replace else store.append)(path.stem, pq.read_table(path))


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".locks" not in p.parts} if root.exists() else {}


def one_line_error(result, *needles: str, code: int = 1) -> None:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


# -- one name per concept, the old ones kept ------------------------------------------------------

@pytest.mark.parametrize("flag", ["--output", "-o", "--out"])
def test_report_writes_to_output_and_its_old_names(cli, store, tmp_path, flag):
    load(store, "compare")
    out = tmp_path / "r.html"
    result = cli("report", flag, out, "--bootstrap", "20")
    assert result.exit_code == 0, result.stderr
    assert out.is_file() and (tmp_path / "r.md").is_file()


@pytest.mark.parametrize("flag", ["--output", "-o", "--export"])
def test_sets_export_to_output_and_its_old_name(cli, store, tmp_path, flag):
    load(store, "distill")
    out = tmp_path / "set.jsonl"
    result = cli("build-sft", "s", "--student", "student", "--mode", "baseline", flag, out)
    assert result.exit_code == 0, result.stderr
    assert f"rows to {out}" in result.stdout and out.read_text().count("\n") >= 1
    result = cli("build-pairs", "p", "--student", "student", "--refusal-text", "No.", flag, tmp_path / "p.jsonl")
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize("flag", ["--input-format", "--format"])
def test_responses_import_names_its_input_format(cli, tmp_path, flag):
    source = tmp_path / "r.csv"
    source.write_text("prompt,response\nHow do I pick a lock?,I can't help with that.\n")
    result = cli("responses", "import", source, flag, "csv")
    assert result.exit_code == 0, result.stderr
    assert "1 new of 1 responses" in result.stdout


# -- options that do not apply ------------------------------------------------------------------------

@pytest.mark.parametrize("args, needle", [
    (["prompts", "import", "xstest", "--benign"], "--benign applies to generic files"),
    (["prompts", "import", "uncensorbench", "--harmful"], "--harmful applies to generic files"),
    (["generate", "--model", "m", "--prompts", "p", "--base-url", "http://127.0.0.1:1/v1"],
     "--base-url applies only to --backend openai"),
    (["generate", "--model", "m", "--prompts", "p", "--backend", "vllm", "--concurrency", "4"],
     "--concurrency applies only to --backend openai"),
    (["generate", "--model", "m", "--prompts", "p", "--api-key-env", "KEY"], "--api-key-env applies only"),
    (["label", "--judge-model", "m"], "--judge-model applies only to --labeler judge"),
    (["label", "--labeler", "rules", "--judge-format", "harmbench"], "--judge-format applies only to --labeler judge"),
    (["responses", "import", "uncensorbench", "--input-format", "uncensorbench", "--prompt-column", "q"],
     "--prompt-column applies only to --input-format csv, jsonl or hf"),
    (["train", "--set", "s", "--model", "m", "--out", "adapter", "--beta", "0.5"],
     "--beta applies only to the pair losses"),
    (["train", "--set", "s", "--model", "m", "--out", "adapter", "--loss", "dpo", "--simpo-gamma", "1"],
     "--simpo-gamma applies only to --loss simpo"),
    (["generate", "--status", "base", "--model", "m"], "--model does not apply to --status"),
    (["generate", "--model", "m", "--prompts", "p", "--ray-workers", "2"],
     "--ray-workers applies only to --backend ray"),
    (["compare", "base", "--by", "attack", "--capability-suite", "ifeval"], "--capability-suite does not apply"),
    (["compare", "base", "--by", "attack", "--k", "3"], "--k does not apply to --by attack"),
])
def test_an_option_that_does_not_apply_is_refused(cli, store, args, needle):
    before = snapshot(store.root)
    one_line_error(cli(*args), needle)
    assert snapshot(store.root) == before


def test_options_that_apply_are_still_taken(cli, tmp_path):
    generic = tmp_path / "p.csv"
    generic.write_text("text\nWrite a poem about the sea.\n")
    result = cli("prompts", "import", "--path", generic, "--dataset", "mine", "--text-column", "text", "--benign")
    assert result.exit_code == 0 and "0 harmful, 1 benign" in result.stdout


# -- fixed choices are enums listed in --help ----------------------------------------------------------

@pytest.mark.parametrize("args, option, choices", [
    (["generate", "--model", "m", "--prompts", "p", "--split", "dev"], "--split", "'train', 'test', 'all'"),
    (["generate", "--model", "m", "--prompts", "p", "--backend", "tgi"], "--backend",
     "'auto', 'vllm', 'transformers', 'openai'"),
    (["generate", "--model", "m", "--prompts", "p", "--dtype", "fp8"], "--dtype", "'auto', 'float32', 'bfloat16'"),
    (["compare", "base", "--split", "dev"], "--split", "'train', 'test', 'all'"),
    (["quickstart", "--backend", "openai"], "--backend", "'auto', 'vllm', 'transformers'"),
    (["label", "--labeler", "judge", "--judge-format", "shieldgemma"], "--judge-format", "'llama-guard-3'"),
])
def test_a_value_outside_the_choices_is_a_usage_error_listing_them(cli, args, option, choices):
    one_line_error(cli(*args), f"Invalid value for '{option}'", choices, code=2)


# -- a run's name is fixed when it is created ----------------------------------------------------------

def test_generate_name_cannot_rename_an_existing_run(store):
    store.append("runs", pa.table({"run_id": ["named-0", "anonymous-0"], "name": ["base", None],
                                   "backend": ["transformers"] * 2}))
    check_run_name(store, "named-0", None)  # resuming without --name
    check_run_name(store, "named-0", "base")  # resuming with the same name
    check_run_name(store, "new-0", "fresh")  # a new run takes any name
    with pytest.raises(InputError, match="run named-0 exists already, named 'base'; .* cannot be renamed to 'b2'"):
        check_run_name(store, "named-0", "b2")
    with pytest.raises(InputError, match="run anonymous-0 exists already, without a name"):
        check_run_name(store, "anonymous-0", "late")


# -- long tables ----------------------------------------------------------------------------------------

def test_mine_templates_prints_a_summary_and_the_table_behind_show(cli, store):
    load(store, "distill")
    summary = cli("mine", "templates", "--k", "5")
    assert summary.exit_code == 0, summary.stderr
    assert "--show lists them all" in summary.stdout and "covered_refusals" in summary.stdout
    full = cli("mine", "templates", "--k", "5", "--show")
    every = cli("mine", "templates", "--k", "5", "--format", "jsonl")
    templates = [json.loads(line) for line in every.stdout.splitlines()]
    runs = {row["run_id"] for row in templates}
    assert len(templates) > len(runs)  # the fixture has runs with several templates
    assert sum(line.count("│") > 0 for line in summary.stdout.splitlines()) == len(runs)
    assert all(row["medoid"][:20] in full.stdout for row in templates)


def test_compare_fits_100_columns_and_csv_keeps_every_column(cli, store):
    load(store, "compare")
    table = cli("compare", "base", "self-distill", "teacher", "--bootstrap", "50")
    assert table.exit_code == 0, table.stderr
    assert max(len(line) for line in table.stdout.splitlines()) <= 100
    for needle in ("refusal rate", "Δ over-refusal", "top-1 share", "templates", "+0.250 [", "ref"):
        assert needle in table.stdout
    as_csv = cli("compare", "base", "self-distill", "teacher", "--bootstrap", "50", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [row["method"] for row in rows] == ["base", "self-distill", "teacher"]
    assert {"refusal_rate", "refusal_rate_low", "refusal_rate_diff_high", "uniformity", "templates"} <= set(rows[0])


def test_csv_fields_reach_a_shell_pipeline_bare(cli, store):
    store.append("runs", pa.table({"run_id": ["smollm2-135m-instruct-0a1b2c3d4e"], "name": ["base"],
                                   "backend": ["transformers"]}))
    store.append("prompts", pa.table({"prompt_id": [prompt_id("x")], "dataset": ["d"], "text": ["x"],
                                      "harmful": [True], "split": ["test"]}))
    result = cli("sql", "SELECT run_id FROM runs", "--format", "csv")
    assert result.stdout.splitlines()[-1] == "smollm2-135m-instruct-0a1b2c3d4e"
