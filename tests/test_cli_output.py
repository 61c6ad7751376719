"""What commands write and print: outputs never destroy, text is never markup, CSV quotes only where needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from refusaldata.keys import prompt_id

COMPARE_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "compare"
DISTILL_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "distill"
MARKUP = ["[/INST]", "[link](http://x)", "[bold red]loud[/]", ":smile:", "[/exp [v2]/store]"]


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".locks" not in p.parts} if root.exists() else {}


def load(store, folder: Path) -> None:
    from refusaldata.schemas import TABLES

    for path in sorted(folder.glob("*.parquet")):
        (store.replace if TABLES[path.stem].replace else store.append)(path.stem, pq.read_table(path))


# -- outputs never destroy ------------------------------------------------------------------------

def test_a_failed_parquet_export_keeps_the_old_file(cli, tmp_path):
    keep = tmp_path / "keep.parquet"
    keep.write_bytes(b"the user's own file")
    result = cli("sql", "SELECT INTERVAL 1 DAY AS i", "--format", "parquet", "--output", keep)
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"Error: cannot write {keep} as Parquet: ")
    assert keep.read_bytes() == b"the user's own file"
    assert [p.name for p in tmp_path.iterdir() if p.name != "store"] == ["keep.parquet"]


def test_a_link_is_written_through_and_kept(cli, tmp_path):
    real = tmp_path / "real.csv"
    real.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    assert cli("sql", "SELECT 1 AS one", "--format", "csv", "--output", link).exit_code == 0
    assert link.is_symlink() and real.read_text() == "one\n1\n"


def test_a_pipe_is_written_in_place(cli, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    assert cli("sql", "SELECT 2 AS two", "--format", "jsonl", "-o", fifo).exit_code == 0
    reader.join(timeout=30)
    assert received == [b'{"two": 2}\n'] and fifo.is_fifo()


def test_a_full_device_is_one_error_line(cli):
    result = cli("sql", "SELECT 1 AS one", "--format", "csv", "-o", "/dev/full")
    assert result.exit_code == 1 and result.stderr == "Error: cannot write /dev/full: No space left on device\n"
    assert Path("/dev/full").is_char_device()


def test_dev_stdout_is_the_stream_and_survives(store, tmp_path):
    """Through the console script: /dev/stdout is written at the stream's offset, never replaced."""
    out = tmp_path / "out.txt"
    with open(out, "w") as sink:
        sink.write("before\n")
        sink.flush()
        for fmt in ("csv", "parquet"):
            done = subprocess.run([sys.executable, "-m", "refusaldata.cli", "sql", "SELECT 1 AS one", "--format", fmt,
                                   "-o", "/dev/stdout"], stdout=sink, stderr=subprocess.PIPE, text=True, timeout=120,
                                  env={**os.environ, "REFUSALDATA_STORE": str(store.root)})
            assert done.returncode == 0, done.stderr
    data = out.read_bytes()
    assert data.startswith(b"before\none\n1\nPAR1") and data.endswith(b"PAR1")
    assert Path("/dev/stdout").is_symlink()


def test_an_output_inside_the_store_is_refused(cli, store, tmp_path):
    store.append("prompts", pa.Table.from_pylist([
        {"prompt_id": prompt_id("x"), "dataset": "x", "text": "x", "harmful": True, "split": "train"}]))
    before = snapshot(store.root)
    table_folder = store.root / "prompts" / "dataset=x"
    for args in (["sql", "SELECT 1", "--format", "parquet", "--output", table_folder / "e.parquet"],
                 ["prompts", "list", "-o", store.root / "list.txt"],
                 ["tables", "--output", store.root],
                 ["report", "--out", store.root / "report" / "r.html"],
                 ["build-sft", "s", "--student", "x", "--mode", "baseline", "--export", store.root / "s.jsonl"],
                 ["train", "--set", "s", "--model", "smollm2-135m-instruct", "--out", store.root / "adapter"]):
        result = cli(*args)
        assert result.exit_code == 1 and result.stderr.count("\n") == 1, (args, result.stderr)
        assert "is inside the store" in result.stderr
    assert snapshot(store.root) == before
    assert cli("prompts", "list", "-o", tmp_path / "list.txt").exit_code == 0


def test_a_failed_report_leaves_the_previous_one_whole(cli, store, tmp_path):
    load(store, COMPARE_FIXTURE)
    out = tmp_path / "study.html"
    assert cli("report", "--out", out, "--bootstrap", "50").exit_code == 0
    before = {p.name: p.read_bytes() for p in tmp_path.glob("study*")}
    (tmp_path / "study-rates.svg").unlink()
    (tmp_path / "study-rates.svg").mkdir()  # the last file cannot be written
    result = cli("report", "--out", out, "--bootstrap", "60")
    assert result.exit_code == 1 and "study-rates.svg" in result.stderr
    assert {p.name: p.read_bytes() for p in tmp_path.glob("study*") if p.is_file()} == {
        name: data for name, data in before.items() if name != "study-rates.svg"}
    assert not list(tmp_path.glob(".tmp-*"))


# -- text is data ---------------------------------------------------------------------------------

def test_markup_and_control_characters_print_as_written(cli, store):
    store.append("prompts", pa.Table.from_pylist([
        {"prompt_id": prompt_id(text), "dataset": "m", "category": text, "text": text, "harmful": True,
         "split": "train"} for text in MARKUP]))
    result = cli("prompts", "list", "--dataset", "m")
    assert result.exit_code == 0, result.stderr
    for text in MARKUP:
        assert text in result.stdout
    result = cli("sql", "SELECT text AS \"[b]x[/b]\", chr(27) || '[2J' || chr(8238) AS c FROM prompts LIMIT 1")
    assert result.exit_code == 0, result.stderr
    assert "[b]x[/b]" in result.stdout and "\\x1b[2J\\u202e" in result.stdout and "\x1b" not in result.stdout


def test_a_store_path_with_brackets_prints_whole(cli, tmp_path):
    root = tmp_path / "exp [v2]" / "store"
    result = cli("tables", "--store", root)
    assert result.exit_code == 0, result.stderr
    assert f"store {root}" in result.stdout


def test_messages_escape_control_characters(cli):
    result = cli("compare", "no\x1b]0;owned\x07run")
    assert result.exit_code == 1 and "\x1b" not in result.stderr and "\\x1b]0;owned\\x07run" in result.stderr


def test_a_huge_cell_is_cut_in_the_table_only(cli):
    result = cli("sql", "SELECT repeat('ab ', 100000) AS x")
    assert result.exit_code == 0 and "[+298000 characters; --format csv or json shows all]" in result.stdout
    assert len(cli("sql", "SELECT repeat('ab ', 100000) AS x", "--format", "csv").stdout) == 2 + 300000 + 1


# -- formats --------------------------------------------------------------------------------------

def test_csv_quotes_only_where_needed(cli):
    result = cli("sql", "SELECT 'smollm2-135m' AS run_id, 'a,b' AS \"two words\", 'say \"hi\"' AS q, '' AS empty, "
                        "NULL::VARCHAR AS missing, 'x' || chr(10) || 'y' AS lines, 0.5::DOUBLE AS f, true AS t",
                 "--format", "csv")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ('run_id,two words,q,empty,missing,lines,f,t\n'
                             'smollm2-135m,"a,b","say ""hi""","",,"x\ny",0.5,true\n')


def test_json_lines_are_valid_json(cli):
    result = cli("sql", "SELECT 'nan'::DOUBLE AS x, ['inf'::DOUBLE, 1.0] AS l, '\\x00'::BLOB AS b", "--format", "jsonl")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"x": None, "l": [None, 1.0], "b": "\\x00"}


def test_commands_print_only_through_common():
    """Messages go through cli.common.echo (control characters escaped) and tables through emit: no other printing."""
    import ast

    offences = []
    for path in sorted((Path(__file__).resolve().parents[1] / "cli").glob("*.py")):
        if path.name in ("common.py", "entry.py"):  # entry prints fixed text only, before anything imports
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = ast.unparse(node.func)
                if name in ("print", "typer.echo", "click.echo", "sys.stdout.write", "sys.stderr.write",
                            "typer.secho") or name.endswith("console.print"):
                    offences.append(f"{path.name}:{node.lineno}: {name}")
    assert offences == []
