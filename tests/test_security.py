"""Security properties: bound SQL values, a read-only `sql`, no remote code, no pickle, short excerpts."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from refusaldata.keys import prompt_id

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*(ROOT / "refusaldata").rglob("*.py"), *(ROOT / "cli").rglob("*.py")])
SQL_WORDS = re.compile(r"\b(SELECT|INSERT|CREATE|FROM|WHERE|SET VARIABLE|COPY|ATTACH|DELETE|UPDATE|VIEW|JOIN|"
                       r"ORDER BY|GROUP BY|VALUES)\b")

# The only expressions formatted into SQL: identifiers and fragments built from our own
# schemas (TABLES names, declared key columns) or fixed literals in the same function.
ALLOWED_SQL_INTERPOLATIONS = {
    "refusaldata/analyst.py": {"name", "literal"},           # a TABLES name; the store path, quoted
    "refusaldata/distill.py": {"table", "order"},            # 'sft'/'pairs' (checked), a fixed ORDER BY
    "refusaldata/labelers/rules.py": {"sql_text('label_rules')", "sql_text('label_kept')"},  # named SQL assets, whole
    "refusaldata/store.py": {"variable", "table", "columns", "matches", "stored", "keys"},  # schema names
}


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _sql_like(text: str) -> bool:
    return bool(SQL_WORDS.search(text))


def _literal(node: ast.AST) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value for v in node.values if isinstance(v, ast.Constant))
    return ""


def sql_formatting_offences() -> list[str]:
    """Every place SQL text is built with f-strings, %, .format or + from something not allowed."""
    offences = []
    for path in SOURCES:
        relative = _relative(path)
        allowed = ALLOWED_SQL_INTERPOLATIONS.get(relative, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{relative}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.JoinedStr) and _sql_like(_literal(node)):
                for value in node.values:
                    if isinstance(value, ast.FormattedValue) and ast.unparse(value.value) not in allowed:
                        offences.append(f"{where}: f-string SQL interpolates {ast.unparse(value.value)}")
            elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and _sql_like(_literal(node.left)):
                offences.append(f"{where}: SQL built with %")
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"
                  and _sql_like(_literal(node.func.value))):
                offences.append(f"{where}: SQL built with .format")
            elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and (
                    _sql_like(_literal(node.left)) or _sql_like(_literal(node.right))):
                other = node.right if _sql_like(_literal(node.left)) else node.left
                if not isinstance(other, (ast.Constant, ast.JoinedStr)):
                    offences.append(f"{where}: SQL concatenated with {ast.unparse(other)}")
    return offences


def test_sql_values_are_always_bound_parameters():
    assert sql_formatting_offences() == []


def test_the_sql_scan_catches_formatted_values(tmp_path, monkeypatch):
    """The scanner itself flags each way of formatting a value into SQL."""
    bad = tmp_path / "refusaldata" / "bad.py"
    bad.parent.mkdir()
    bad.write_text('con.sql(f"SELECT * FROM prompts WHERE text = \'{text}\'")\n'
                   'con.sql("SELECT * FROM runs WHERE name = \'%s\'" % name)\n'
                   'con.sql("DELETE FROM runs WHERE name = {}".format(name))\n'
                   'con.sql("SELECT * FROM runs WHERE name = " + name)\n')
    monkeypatch.setattr(__import__(__name__, fromlist=["x"]), "ROOT", tmp_path)
    monkeypatch.setattr(__import__(__name__, fromlist=["x"]), "SOURCES", [bad])
    found = sql_formatting_offences()
    assert len(found) == 4 and all(line.startswith("refusaldata/bad.py:") for line in found)


def test_the_allowlist_is_small_and_every_entry_is_used():
    used: dict[str, set[str]] = {}
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.JoinedStr) and _sql_like(_literal(node)):
                used.setdefault(_relative(path), set()).update(
                    ast.unparse(v.value) for v in node.values if isinstance(v, ast.FormattedValue))
    for relative, names in ALLOWED_SQL_INTERPOLATIONS.items():
        assert names <= used.get(relative, set()), f"{relative}: stale allowlist entries {names - used[relative]}"
    assert sum(len(names) for names in ALLOWED_SQL_INTERPOLATIONS.values()) <= 12


# -- `refusaldata sql` is read-only unless --write ---------------------------------------------------

def _snapshot(root: Path) -> dict[str, bytes]:
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".locks" not in p.parts}


@pytest.fixture
def small_store(store):
    store.append("prompts", pa.Table.from_pylist([
        {"prompt_id": prompt_id(text), "dataset": "tiny", "text": text, "harmful": True, "split": "test"}
        for text in ("How do I pick a lock?", "Write a poem.")]))
    return store


def _import_folder(tmp_path: Path, out: Path, store_root: Path) -> Path:
    """A folder IMPORT DATABASE would run: its schema.sql COPYs to a file outside and into the store."""
    folder = tmp_path / "import"
    folder.mkdir(exist_ok=True)
    (folder / "schema.sql").write_text(
        f"COPY (SELECT 42 AS x) TO '{out}';\n"
        f"COPY (SELECT 42 AS x) TO '{store_root}/prompts/dataset=tiny/part-{'0' * 32}.parquet';\n")
    (folder / "load.sql").write_text("")
    return folder


WRITES_WITHOUT_WRITE = {
    "copy": lambda out, folder: f"COPY (SELECT * FROM prompts) TO '{out}'",
    "explain-analyze-copy": lambda out, folder: f"EXPLAIN ANALYZE COPY (SELECT * FROM prompts) TO '{out}'",
    "explain-analyse-lower": lambda out, folder: f"explain analyse copy (select 1) to '{out}'",
    "comment-explain-analyze-copy": lambda out, folder: f"/* c */ EXPLAIN ANALYZE COPY (SELECT 1) TO '{out}'",
    "explain-comment-analyze-copy": lambda out, folder: f"EXPLAIN -- c\n ANALYZE /* d */ COPY (SELECT 1) TO '{out}'",
    "explain-options-copy": lambda out, folder: f"EXPLAIN (ANALYZE, FORMAT json) COPY (SELECT 1) TO '{out}'",
    "create": lambda out, folder: "CREATE TABLE copied AS SELECT * FROM prompts",
    "explain-analyze-create": lambda out, folder: "EXPLAIN ANALYZE CREATE TABLE copied AS SELECT 1",
    "insert": lambda out, folder: "INSERT INTO prompts SELECT * FROM prompts",
    "second-statement": lambda out, folder: "SELECT 1; DELETE FROM prompts",
    "attach": lambda out, folder: f"ATTACH '{out}' AS other",
    "export": lambda out, folder: f"EXPORT DATABASE '{out}'",
    "pragma-export": lambda out, folder: f"PRAGMA export_database('{out}')",
    "pragma-import": lambda out, folder: f"PRAGMA import_database('{folder}')",
    "comment-pragma-import": lambda out, folder: f"/* c */ PRAGMA import_database('{folder}')",
    "import-database": lambda out, folder: f"IMPORT DATABASE '{folder}'",
    "comment-import-database": lambda out, folder: f"SELECT 1; -- c\nIMPORT DATABASE '{folder}'",
    "set-profiling-output": lambda out, folder: f"SET profiling_output = '{out}'",
    "pragma-profiling-output": lambda out, folder: f"PRAGMA profiling_output = '{out}'; PRAGMA enable_profiling; "
                                                   "SELECT 1",
    "set-external-access": lambda out, folder: "SET enable_external_access = true",
    "reset-lock": lambda out, folder: "RESET lock_configuration",
    "install": lambda out, folder: "INSTALL httpfs",
    "load": lambda out, folder: "LOAD httpfs",
    "update-extensions": lambda out, folder: "UPDATE EXTENSIONS",
    "checkpoint": lambda out, folder: "CHECKPOINT",
}


@pytest.mark.parametrize("query_for", list(WRITES_WITHOUT_WRITE.values()), ids=list(WRITES_WITHOUT_WRITE))
def test_sql_refuses_writes_without_write(cli, small_store, tmp_path, query_for):
    out = tmp_path / "written.csv"
    folder = _import_folder(tmp_path, out, small_store.root)
    before = _snapshot(small_store.root)
    result = cli("sql", query_for(out, folder))
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: SQL:") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr and "Recursion" not in result.stderr
    assert not out.exists()
    assert _snapshot(small_store.root) == before


def test_sql_reads_only_the_stores_files_without_write(cli, small_store, tmp_path):
    """A file outside the store is out of reach without --write; with it, as before."""
    data = tmp_path / "mine.csv"
    data.write_text("a\n1\n")
    refused = cli("sql", f"SELECT * FROM read_csv('{data}')")
    assert refused.exit_code == 1 and "reads only the store's own files" in refused.stderr
    assert cli("sql", f"SELECT * FROM read_csv('{data}')", "--write", "-f", "csv").stdout == "a\n1\n"


def test_sql_reads_and_explains_without_write(cli, small_store):
    assert cli("sql", "SELECT count(*) AS n FROM prompts", "--format", "jsonl").stdout.strip() == '{"n": 2}'
    assert cli("sql", "EXPLAIN SELECT * FROM prompts").exit_code == 0
    assert cli("sql", "PRAGMA table_info('prompts')").exit_code == 0
    for query in ("/* c */ EXPLAIN ANALYZE SELECT * FROM prompts", "EXPLAIN (FORMAT json) SELECT 1",
                  "EXPLAIN ANALYZE (SELECT 1)", "SUMMARIZE prompts", "SET VARIABLE x = 1; SELECT getvariable('x')",
                  "SELECT count(*) FROM labels_of('rules')"):
        assert cli("sql", query).exit_code == 0, (query, cli("sql", query).stderr)


def test_sql_writes_with_write(cli, small_store, tmp_path):
    out = tmp_path / "written.csv"
    result = cli("sql", f"COPY (SELECT text FROM prompts ORDER BY text) TO '{out}'", "--write")
    assert result.exit_code == 0, result.stderr
    assert out.read_text().splitlines() == ["text", "How do I pick a lock?", "Write a poem."]


# -- no remote code, safetensors only -------------------------------------------------------------------

def _calls(name: str):
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == name:
                yield _relative(path), node


def test_trust_remote_code_is_never_true():
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg == "trust_remote_code":
                assert isinstance(node.value, ast.Constant) and node.value.value is False, (
                    f"{_relative(path)}:{node.value.lineno}: trust_remote_code must be the literal False")
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values):
                    if isinstance(key, ast.Constant) and key.value == "trust_remote_code":
                        assert isinstance(value, ast.Constant) and value.value is False, _relative(path)


def test_model_weights_load_with_use_safetensors():
    """Every model (not tokenizer or config) from_pretrained asks for safetensors; GGUF is not pickle."""
    weight_loads = 0
    for relative, call in _calls("from_pretrained"):
        owner = ast.unparse(call.func.value)
        if "Tokenizer" in owner or "Config" in owner:
            continue
        weight_loads += 1
        keywords = {k.arg: k.value for k in call.keywords}
        if "gguf_file" in keywords:
            continue
        flag = keywords.get("use_safetensors")
        assert isinstance(flag, ast.Constant) and flag.value is True, (
            f"{relative}:{call.lineno}: {owner}.from_pretrained without use_safetensors=True")
    assert weight_loads >= 4


def test_no_pickle_loaders_in_the_sources():
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        for banned in ("torch.load(", "pickle.load", "joblib.load", "weights_only=False"):
            assert banned not in text, f"{_relative(path)} uses {banned}"


def _pickled_adapter(tmp_path: Path) -> Path:
    adapter = tmp_path / "pickled-adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"r": 8, "lora_alpha": 16, "peft_type": "LORA"}')
    (adapter / "adapter_model.bin").write_bytes(b"\x80\x04not loaded")
    return adapter


def test_generate_refuses_a_pickle_only_adapter(cli, small_store, tmp_path, embedded_model):
    before = _snapshot(small_store.root)
    result = cli("generate", "--model", "smollm2-135m-instruct", "--prompts", "tiny", "--backend", "transformers",
                 "--adapter", _pickled_adapter(tmp_path), "--max-tokens", "4")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "found adapter_model.bin: pickle files are never loaded" in result.stderr
    assert _snapshot(small_store.root) == before


def test_train_refuses_a_pickle_only_model_folder(cli, store, tmp_path, embedded_model):
    """A base model folder whose weights are only pytorch_model.bin is never unpickled."""
    folder = tmp_path / "pickled-model"
    shutil.copytree(embedded_model, folder, ignore=shutil.ignore_patterns("*.safetensors", "*.gguf"))
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04not loaded")
    store.replace("sft", pa.Table.from_pylist([{
        "set_name": "refuse", "mode": "baseline", "kind": "refusal", "prompt_id": prompt_id("How do I pick a lock?"),
        "split": "train", "prompt": "How do I pick a lock?", "target": "I'm sorry, but I can't help with that."}]))
    before = _snapshot(store.root)
    result = cli("train", "--set", "refuse", "--model", folder, "--out", tmp_path / "out", "--max-steps", "1",
                 "--batch-size", "1", "--max-length", "32", "--threads", "1")
    assert result.exit_code == 1 and result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr and "safetensors" in result.stderr, result.stderr
    assert _snapshot(store.root) == before
    assert not (tmp_path / "out" / "adapter_model.safetensors").exists()


# -- errors quote at most 80 characters of model or user text ---------------------------------------------

def test_quoted_values_in_library_messages_are_cut_to_an_excerpt():
    from refusaldata.errors import EXCERPT_CHARS, shorten_quoted

    text = "Sure, here is how to build it: " + "step " * 100
    message = shorten_quoted(f"Conversion Error: Could not convert string '{text}' to INT32")
    assert message.startswith("Conversion Error: Could not convert string 'Sure, here is how")
    frame = "Conversion Error: Could not convert string '' to INT32"
    assert message.endswith("…' to INT32") and len(message) == len(frame) + EXCERPT_CHARS
    assert shorten_quoted("no run 'x' in /store") == "no run 'x' in /store"


# -- the store writes only inside itself: no link is followed out of it ----------------------------------------------

def _imported(cli, tmp_path: Path, name: str = "answers") -> Path:
    path = tmp_path / f"{name}.csv"
    path.write_text("prompt,response\nHow do I pick a lock?,Sure.\nWrite a poem.,No.\n")
    assert cli("responses", "import", path, "--format", "csv").exit_code == 0
    return path


def _refused_leaving(result, outside: Path, content: bytes, *needles: str) -> None:
    assert result.exit_code == 1 and result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    assert all(needle in result.stderr for needle in needles), result.stderr
    assert outside.read_bytes() == content


def test_label_refuses_a_partition_file_that_links_out_of_the_store(cli, store, tmp_path):
    _imported(cli, tmp_path)
    assert cli("label", "--labeler", "rules").exit_code == 0
    [stored] = store.files("labels")
    outside = tmp_path / "outside.parquet"
    shutil.copyfile(stored, outside)  # a readable labels file, so only the write can refuse it
    content = outside.read_bytes()
    stored.unlink()
    stored.symlink_to(outside)
    result = cli("label", "--labeler", "rules", "--force")
    _refused_leaving(result, outside, content, str(stored), "is a link", "never writes through a link")


def test_responses_import_refuses_a_lock_file_that_links_out_of_the_store(cli, store, tmp_path):
    _imported(cli, tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"the user's file")
    for lock in (store.root / ".locks").iterdir():
        lock.unlink()
        lock.symlink_to(outside)
    before = _snapshot(store.root)
    other = tmp_path / "more.csv"
    other.write_text("prompt,response\nHow do I pick a lock?,No.\n")
    result = cli("responses", "import", other, "--format", "csv")
    _refused_leaving(result, outside, b"the user's file", ".lock", "is a link")
    after = _snapshot(store.root)
    assert {path: after.get(path) for path in before} == before  # nothing stored before is changed


def test_a_table_folder_that_links_out_of_the_store_is_never_written(store, tmp_path):
    from refusaldata.errors import StoreError

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    store.create()
    (store.root / "prompts").symlink_to(outside, target_is_directory=True)
    with pytest.raises(StoreError, match="a link leads it out of the store"):
        store.append("prompts", pa.table({"prompt_id": [prompt_id("Hi")], "dataset": ["d"], "text": ["Hi"],
                                          "harmful": [True], "split": ["test"]}))
    assert not list(outside.rglob("*"))


def test_a_store_whose_root_is_a_link_is_written_as_before(tmp_path):
    from refusaldata.store import Store

    real = tmp_path / "real-store"
    real.mkdir()
    (tmp_path / "linked").symlink_to(real, target_is_directory=True)
    store = Store(tmp_path / "linked")
    store.append("prompts", pa.table({"prompt_id": [prompt_id("Hi")], "dataset": ["d"], "text": ["Hi"],
                                      "harmful": [True], "split": ["test"]}))
    assert store.count("prompts") == 1 and list((real / "prompts").rglob("part-*.parquet"))


# -- no credential is printed, logged or stored ----------------------------------------------------------------------

@pytest.mark.parametrize("text, shown", [
    ("s3://AKIAEXAMPLE:wJalrXUtnFEMI@bucket/prefix/x", "s3://***@bucket/prefix/x"),
    ("cannot reach http://user:pa55word@host:8000/v1 (HTTP 401)", "cannot reach http://***@host:8000/v1 (HTTP 401)"),
    ("'https://token@example.org/a'", "'https://***@example.org/a'"),
    ("mail me at someone@example.org, see http://example.org/a@b", "mail me at someone@example.org, see "
                                                                   "http://example.org/a@b"),
])
def test_redact_removes_the_userinfo_of_every_url(text, shown):
    from refusaldata.errors import redact

    assert redact(text) == shown


def test_redact_removes_credentials_of_the_environment(monkeypatch):
    from refusaldata.errors import redact, without_userinfo

    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-1234567890")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMIK7MDENG")
    monkeypatch.setenv("SOME_ENDPOINT", "http://admin:hunter22@db.local")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")  # a short value of a secret-like name is kept
    text = redact("tok-1234567890 and wJalrXUtnFEMIK7MDENG and hunter22, false")
    assert text == "*** and *** and ***, false"
    assert without_userinfo("http://u:p@host:1/v1") == "http://host:1/v1"
    assert without_userinfo("http://host:1/v1") == "http://host:1/v1"


def test_a_store_uri_with_credentials_is_refused_without_printing_them(cli):
    result = cli("tables", "--store", "s3://AKIAEXAMPLEKEY:wJalrSECRETvalue@bucket/prefix")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "s3://***@bucket/prefix" in result.stderr and "carries no credentials" in result.stderr
    assert "AKIAEXAMPLEKEY" not in result.stderr and "wJalrSECRETvalue" not in result.stderr


def test_notices_and_errors_pass_through_the_redaction(monkeypatch, capsys):
    import logging

    from refusaldata.cli.main import _NoticeLines, fail

    monkeypatch.setenv("HF_TOKEN", "hf_abcdefghijklmnop")
    record = logging.LogRecord("refusaldata", logging.WARNING, __file__, 1,
                               "retrying https://u:secretpw@hub/x with hf_abcdefghijklmnop", None, None)
    _NoticeLines().emit(record)
    fail("cannot open s3://KEY:SECRET@bucket")
    err = capsys.readouterr().err
    assert err == "Warning: retrying https://***@hub/x with ***\nError: cannot open s3://***@bucket\n"


# -- text written for people to open: Markdown and spreadsheet-bound CSV -----------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SPREADSHEET_TEXT = st.text(st.sampled_from("=+-@\t\r'a ,\"\n"), max_size=8) | st.text(max_size=20)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(text=SPREADSHEET_TEXT)
def test_spreadsheet_cells_never_start_a_formula_and_round_trip_exactly(text):
    from refusaldata.escape import from_spreadsheet, spreadsheet_cell

    cell = spreadsheet_cell(text)
    assert not re.match(r"[=+\-@\t\r]", cell)
    assert from_spreadsheet(cell) == text


@pytest.mark.parametrize("text, shown", [
    ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
    ("[x](javascript:alert(1))", "&#91;x&#93;(javascript:alert(1))"),
    ("a_b *c* `d` e|f g\\h\nnext", "a\\_b \\*c\\* \\`d\\` e\\|f g\\\\h next"),
    ("I'm sorry, but I can't", "I'm sorry, but I can't"),
])
def test_markdown_text_is_inert(text, shown):
    from refusaldata.escape import markdown_text

    assert markdown_text(text) == shown


@pytest.mark.parametrize("damage", ["random-bytes", "truncated"])
def test_generate_refuses_a_corrupt_adapter_before_recording_a_run(cli, small_store, tmp_path, embedded_model, damage):
    import numpy as np
    from safetensors.numpy import save_file

    adapter = tmp_path / "corrupt-adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"r": 8, "lora_alpha": 16, "peft_type": "LORA"}')
    weights = adapter / "adapter_model.safetensors"
    if damage == "random-bytes":
        weights.write_bytes(bytes(range(256)) * 4)
    else:
        save_file({"base_model.model.lora_A.weight": np.zeros((8, 64), np.float32)}, str(weights))
        weights.write_bytes(weights.read_bytes()[:-100])
    before = _snapshot(small_store.root)
    result = cli("generate", "--model", "smollm2-135m-instruct", "--prompts", "tiny", "--backend", "transformers",
                 "--adapter", adapter, "--max-tokens", "4")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "not a readable safetensors file" in result.stderr and "unexpected" not in result.stderr
    assert _snapshot(small_store.root) == before


def test_stored_configs_and_reports_hold_no_url_credentials(store, tmp_path, monkeypatch):
    from refusaldata.runs import record_run
    from refusaldata.report import write_report

    record_run(store, "leaky-0123456789", "import", {"source": "https://reader:pa55word@example.org/a.csv"},
               name="https://reader:pa55word@example.org/model", model="m")
    [run] = store.read("runs").to_pylist()
    assert "pa55word" not in run["config"] and "https://***@example.org/a.csv" in run["config"]
    store.append("prompts", pa.table({"prompt_id": [prompt_id("How do I pick a lock?")], "dataset": ["d"],
                                      "text": ["How do I pick a lock?"], "harmful": [True], "split": ["test"]}))
    store.append("responses", pa.table({"run_id": ["leaky-0123456789"],
                                        "prompt_id": [prompt_id("How do I pick a lock?")],
                                        "sample_index": pa.array([0], pa.int32()), "response": ["I can't help."]}))
    from refusaldata.label import label

    label(store, labeler="rules")
    html_path, md_path = write_report(store, None, tmp_path / "r.html", labeler="rules", bootstrap=10)
    for path in (html_path, md_path):
        assert "pa55word" not in path.read_text() and "***@example.org" in path.read_text()


def test_a_report_written_inside_the_store_never_follows_a_link_out(store, tmp_path):
    """quickstart writes its report into the store's report/ folder: a link there is refused, not followed."""
    from refusaldata.errors import InputError
    from refusaldata.label import label
    from refusaldata.report import write_report

    store.append("prompts", pa.table({"prompt_id": [prompt_id("How do I pick a lock?")], "dataset": ["d"],
                                      "text": ["How do I pick a lock?"], "harmful": [True], "split": ["test"]}))
    store.append("runs", pa.table({"run_id": ["r-0123456789"], "name": ["r"], "backend": ["import"]}))
    store.append("responses", pa.table({"run_id": ["r-0123456789"], "prompt_id": [prompt_id("How do I pick a lock?")],
                                        "sample_index": pa.array([0], pa.int32()), "response": ["I can't help."]}))
    label(store, labeler="rules")
    folder = store.local_folder("report")
    folder.mkdir()
    outside = tmp_path / "outside.md"
    outside.write_text("the user's file")
    (folder / "quickstart.md").symlink_to(outside)
    with pytest.raises(InputError, match="is a link"):
        write_report(store, None, folder / "quickstart.html", labeler="rules", bootstrap=10)
    assert outside.read_text() == "the user's file" and not (folder / "quickstart.html").exists()


def test_training_into_the_store_never_follows_a_link_out(store, tmp_path):
    """quickstart trains into the store's trained/ folder: a method folder there that links out is refused."""
    from refusaldata.errors import BackendError
    from refusaldata.train.loop import train_adapter

    store.replace("sft", pa.Table.from_pylist([
        {"set_name": "s", "mode": "baseline", "kind": "refusal", "prompt_id": prompt_id(f"q{i}?"), "split": "train",
         "prompt": f"q{i}?", "target": "No."} for i in range(3)]))
    outside = tmp_path / "outside"
    outside.mkdir()
    trained = store.local_folder("trained")
    trained.mkdir()
    (trained / "sft").symlink_to(outside, target_is_directory=True)
    with pytest.raises(BackendError, match="a link leads it out of the store"):
        train_adapter(store, "s", "no-such-model-is-ever-loaded", trained / "sft", max_steps=1)
    assert not list(outside.iterdir())
