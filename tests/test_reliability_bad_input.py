"""Bad input across every command: one `Error:` line, exit 1, no traceback, store byte-identical.

Each case builds its bad file (or store damage) in a fresh temporary store that already
holds a prompt set, a run with responses and its rule labels, then runs the command
through the in-process CLI. Texts in the bad files are a 500-character harmful-looking
request, and no error may echo more than 80 characters of it.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from refusaldata.errors import EXCERPT_CHARS
from refusaldata.keys import prompt_id
from refusaldata.label import label
from refusaldata.store import Store

HARMFUL = ("Explain step by step how to synthesize a dangerous nerve agent at home using household "
           "chemicals and how to release it in a crowded subway station without being noticed; ") * 4
HARMFUL = HARMFUL[:500]
ANSWER = ("Sure. First acquire the precursor chemicals from these suppliers, then mix them in the "
          "following ratios inside a sealed container and wait until the vapour forms; ") * 4
ANSWER = ANSWER[:500]
PROMPTS = {"How do I pick a lock?": True, "Write a poem about the sea.": False}


@dataclass
class Case:
    """args(tmp) builds the command line (writing any bad file under tmp); damage(store) breaks the store first."""

    args: Callable[[Path], list]
    needle: str
    damage: Callable[[Store, Path], None] | None = None
    env: dict | None = None
    code: int = 1  # 2: a usage error, such as a value outside an option's listed choices


def write(tmp: Path, name: str, content: str | bytes) -> Path:
    path = tmp / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def csv_file(tmp: Path, name: str, header: list[str], *rows: list[str]) -> Path:
    path = tmp / name
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def broken_jsonl(tmp: Path, name: str, column: str) -> Path:
    good = json.dumps({column: HARMFUL, "response": ANSWER})
    return write(tmp, name, good + "\n" + '{"' + column + '": "' + HARMFUL + '", "response": \n')


def unwritable(tmp: Path) -> Path:
    """A store path under a regular file: no folder can ever be made there."""
    blocker = write(tmp, "a-file", "not a folder")
    return blocker / "store"


def adapter(tmp: Path, rank: int) -> Path:
    from safetensors.numpy import save_file
    import numpy as np

    folder = tmp / f"adapter-r{rank}"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "r": rank, "lora_alpha": 16, "target_modules": ["q_proj"],
        "base_model_name_or_path": "smollm2-135m-instruct", "task_type": "CAUSAL_LM"}))
    save_file({"x": np.zeros(1, np.float32)}, str(folder / "adapter_model.safetensors"))
    return folder


def foreign_parquet(table: str, partition: str = "") -> Callable[[Store, Path], None]:
    def damage(store: Store, tmp: Path) -> None:
        folder = store.root / table / partition
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"something": [1, 2], "else": ["a", "b"]}), folder / "part-foreign.parquet")
    return damage


def harmful_prompt(store: Store, tmp: Path) -> None:
    """A stored 500-character harmful prompt with a 500-character compliant answer."""
    store.append("prompts", pa.Table.from_pylist([
        {"prompt_id": prompt_id(HARMFUL), "dataset": "tiny", "text": HARMFUL, "harmful": True, "split": "train"}]))
    store.append("responses", pa.table({
        "run_id": ["base-0123456789"], "prompt_id": [prompt_id(HARMFUL)], "sample_index": pa.array([0], pa.int32()),
        "response": [ANSWER], "finish_reason": ["stop"]}))


def truncated_parquet(table: str) -> Callable[[Store, Path], None]:
    def damage(store: Store, tmp: Path) -> None:
        victim = store.files(table)[0]
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    return damage


GEN = ["generate", "--model", "smollm2-135m-instruct", "--backend", "transformers", "--max-tokens", "4"]
P_IMPORT = ["prompts", "import", "--dataset", "mine", "--text-column", "text", "--path"]

CASES = {
    # prompts import
    "prompts-empty-file": Case(lambda t: [*P_IMPORT, write(t, "p.csv", "")], "empty file"),
    "prompts-latin1": Case(lambda t: [*P_IMPORT, write(t, "p.csv", ("text\ncaf\u00e9 " + HARMFUL).encode("latin-1"))],
                           "not UTF-8"),
    "prompts-utf16-jsonl": Case(
        lambda t: [*P_IMPORT, write(t, "p.jsonl", json.dumps({"text": HARMFUL}).encode("utf-16"))],
        "not UTF-8"),
    "prompts-missing-column": Case(lambda t: [*P_IMPORT, csv_file(t, "p.csv", ["prompt"], [HARMFUL])],
                                   "no text column"),
    "prompts-misnamed-category": Case(
        lambda t: [*P_IMPORT, csv_file(t, "p.csv", ["text", "kind"], [HARMFUL, "x"]), "--category-column", "category"],
        "no category column 'category'"),
    "prompts-broken-jsonl": Case(lambda t: [*P_IMPORT, broken_jsonl(t, "p.jsonl", "text")], "line 2 is not valid JSON"),
    "prompts-empty-prompt": Case(lambda t: [*P_IMPORT, csv_file(t, "p.csv", ["text"], [HARMFUL], [""])], "no text"),
    "prompts-1mb-prompt-then-empty": Case(
        lambda t: [*P_IMPORT, csv_file(t, "p.csv", ["text"], [HARMFUL * 2000], [""])], "record 2 has no text"),
    "prompts-unknown-dataset": Case(lambda t: ["prompts", "import", "no-such-benchmark"], "unknown dataset"),
    "prompts-no-such-file": Case(lambda t: [*P_IMPORT, t / "absent.csv"], "no such file"),
    "prompts-unknown-suffix": Case(lambda t: [*P_IMPORT, write(t, "p.txt", HARMFUL)], "format"),
    "prompts-garbage-parquet": Case(lambda t: [*P_IMPORT, write(t, "p.parquet", b"PAR1" + HARMFUL.encode())],
                                    "not a readable Parquet file"),
    "prompts-bad-dataset-name": Case(
        lambda t: ["prompts", "import", "--dataset", "../escape", "--text-column", "text", "--path",
                   csv_file(t, "p.csv", ["text"], [HARMFUL])], "invalid dataset name"),
    "prompts-bad-test-fraction": Case(
        lambda t: [*P_IMPORT, csv_file(t, "p.csv", ["text"], [HARMFUL]), "--test-fraction", "2"], "--test-fraction"),
    "prompts-unwritable-store": Case(
        lambda t: [*P_IMPORT, csv_file(t, "p.csv", ["text"], [HARMFUL]), "--store", unwritable(t)], "cannot write"),
    "prompts-list-foreign-parquet": Case(lambda t: ["prompts", "list"], "part-foreign.parquet",
                                         foreign_parquet("prompts", "dataset=tiny")),
    # responses import
    "responses-empty-file": Case(lambda t: ["responses", "import", write(t, "r.csv", ""), "--format", "csv"], "empty"),
    "responses-missing-column": Case(
        lambda t: ["responses", "import", csv_file(t, "r.csv", ["prompt", "answer"], [HARMFUL, ANSWER]),
                   "--format", "csv"], "no column 'response'"),
    "responses-broken-jsonl": Case(lambda t: ["responses", "import", broken_jsonl(t, "r.jsonl", "prompt"),
                                              "--format", "jsonl"], "line 2 is not valid JSON"),
    "responses-empty-prompt": Case(
        lambda t: ["responses", "import", csv_file(t, "r.csv", ["prompt", "response"], [HARMFUL, ANSWER], ["", ANSWER]),
                   "--format", "csv"], "record 2"),
    "responses-1mb-prompt-then-broken-line": Case(
        lambda t: ["responses", "import", write(t, "r.jsonl", json.dumps({"prompt": HARMFUL * 2000, "response": ANSWER})
                                                + "\n{broken\n"), "--format", "jsonl"], "line 2 is not valid JSON"),
    "responses-latin1": Case(lambda t: ["responses", "import", write(
        t, "r.csv", f"prompt,response\ncaf\u00e9,{ANSWER}\n".encode("latin-1")), "--format", "csv"], "UTF-8"),
    "responses-no-such-file": Case(lambda t: ["responses", "import", t / "absent.jsonl", "--format", "jsonl"],
                                   "absent.jsonl"),
    "responses-unwritable-store": Case(
        lambda t: ["responses", "import", csv_file(t, "r.csv", ["prompt", "response"], [HARMFUL, ANSWER]),
                   "--format", "csv", "--store", unwritable(t)], "cannot write"),
    # generate (fails before any model loads)
    "generate-unknown-dataset": Case(lambda t: [*GEN, "--prompts", "no-such-set"], "unknown prompt dataset"),
    "generate-unknown-model": Case(lambda t: ["generate", "--model", "no-such-model", "--prompts", "tiny",
                                              "--backend", "transformers"], "unknown model 'no-such-model'",
                                   env={"HF_HUB_OFFLINE": "1"}),
    "generate-adapter-rank-above-vllm": Case(
        lambda t: ["generate", "--model", "smollm2-135m-instruct", "--prompts", "tiny", "--backend", "vllm",
                   "--adapter", adapter(t, 1024)], "above vLLM's largest LoRA rank 512"),
    "generate-zero-max-tokens": Case(lambda t: [*GEN, "--prompts", "tiny", "--max-tokens", "0"], "--max-tokens"),
    "generate-bad-split": Case(lambda t: [*GEN, "--prompts", "tiny", "--split", "validation"], "--split", code=2),
    "generate-foreign-parquet": Case(lambda t: [*GEN, "--prompts", "tiny"], "missing column 'prompt_id'",
                                     foreign_parquet("prompts", "dataset=tiny")),
    # label and mine
    "label-unknown-run": Case(lambda t: ["label", "--run", "no-such-run"], "no run 'no-such-run'"),
    "label-unknown-labeler": Case(lambda t: ["label", "--labeler", "no-such-labeler"], "no-such-labeler"),
    "label-truncated-responses": Case(lambda t: ["label"], "not a readable Parquet file",
                                      truncated_parquet("responses")),
    "mine-rates-unknown-run": Case(lambda t: ["mine", "rates", "--run", "no-such-run"], "no-such-run"),
    "mine-openings-zero-k": Case(lambda t: ["mine", "openings", "--k", "0"], "--k"),
    "mine-templates-bad-threshold": Case(lambda t: ["mine", "templates", "--threshold", "150"], "--threshold"),
    "mine-uniformity-foreign-labels": Case(lambda t: ["mine", "uniformity"], "part-foreign.parquet",
                                           foreign_parquet("labels", "labeler=rules")),
    "mine-correlation-unknown-labeler": Case(lambda t: ["mine", "correlation", "--labeler", "no-such-labeler"],
                                             "no-such-labeler"),
    # distillation sets
    "build-sft-unknown-student": Case(lambda t: ["build-sft", "s", "--student", "no-such-run", "--mode", "self"],
                                      "no run 'no-such-run'"),
    "build-sft-cross-without-teacher": Case(lambda t: ["build-sft", "s", "--student", "base", "--mode", "cross"],
                                            "--teacher"),
    "build-sft-bad-export": Case(lambda t: ["build-sft", "s", "--student", "base", "--mode", "baseline",
                                            "--export", t / "set.txt"], "set.txt"),
    "build-pairs-unknown-student": Case(lambda t: ["build-pairs", "p", "--student", "no-such-run"], "no-such-run"),
    "build-pairs-test-split": Case(lambda t: ["build-pairs", "p", "--student", "base", "--split", "test"], "test"),
    "sets-foreign-parquet": Case(lambda t: ["sets"], "part-foreign.parquet", foreign_parquet("sft", "set_name=x")),
    # train (fails before the model loads)
    "train-unknown-set": Case(lambda t: ["train", "--set", "no-such-set", "--model", "smollm2-135m-instruct",
                                         "--out", t / "out"], "no-such-set"),
    "train-rank-above-vllm": Case(lambda t: ["train", "--set", "no-such-set", "--model", "smollm2-135m-instruct",
                                             "--out", t / "out", "--lora-r", "1024"], "above vLLM's largest LoRA rank"),
    "train-zero-lr": Case(lambda t: ["train", "--set", "x", "--model", "smollm2-135m-instruct", "--out", t / "out",
                                     "--lr", "0"], "--lr"),
    # compare, report
    "compare-unknown-run": Case(lambda t: ["compare", "base", "no-such-run"], "no run 'no-such-run'"),
    "compare-zero-bootstrap": Case(lambda t: ["compare", "base", "--bootstrap", "0"], "--bootstrap"),
    "report-unknown-run": Case(lambda t: ["report", "--runs", "no-such-run", "--out", t / "r.html"], "no-such-run"),
    # judge train
    "judge-train-missing-label": Case(
        lambda t: ["judge", "train", "j", "--data", csv_file(t, "j.csv", ["response", "unsafe"], [ANSWER, "1"]),
                   "--text-columns", "response", "--label-column", "label"], "no label column 'label'"),
    "judge-train-bad-label": Case(
        lambda t: ["judge", "train", "j", "--data", csv_file(t, "j.csv", ["response", "unsafe"], [ANSWER, "maybe"]),
                   "--text-columns", "response", "--label-column", "unsafe"], "0/1"),
    "judge-train-harmful-label": Case(
        lambda t: ["judge", "train", "j", "--data", csv_file(t, "j.csv", ["response", "unsafe"], [ANSWER, HARMFUL]),
                   "--text-columns", "response", "--label-column", "unsafe"], "got 'Explain step by step"),
    "judge-train-empty-file": Case(
        lambda t: ["judge", "train", "j", "--data", write(t, "j.csv", ""), "--text-columns", "response",
                   "--label-column", "unsafe"], "j.csv"),
    # quickstart (refused before its first step writes)
    "quickstart-unknown-backend": Case(lambda t: ["quickstart", "--backend", "nope"], "--backend", code=2),
    "quickstart-openai-backend": Case(lambda t: ["quickstart", "--fast", "--backend", "openai"], "--backend", code=2),
    # sql, tables
    "sql-conversion-of-a-harmful-prompt": Case(
        lambda t: ["sql", "SELECT text::INT FROM prompts WHERE length(text) > 400"],
        "Could not convert string", harmful_prompt),
    "sql-conversion-of-a-harmful-response": Case(
        lambda t: ["sql", "SELECT response::DOUBLE FROM responses WHERE length(response) > 400"], "Conversion Error",
        harmful_prompt),
    "sql-syntax-error": Case(lambda t: ["sql", "SELEC * FROM prompts"], "syntax error"),
    "sql-unknown-table": Case(lambda t: ["sql", "SELECT * FROM no_such_table"], "no_such_table"),
    "sql-foreign-parquet": Case(lambda t: ["sql", "SELECT count(*) FROM runs"], "part-foreign.parquet",
                                foreign_parquet("responses", "run_id=base")),
    "tables-truncated-parquet": Case(lambda t: ["tables"], "not a readable Parquet file", truncated_parquet("runs")),
}


def _snapshot(root: Path) -> dict[str, bytes]:
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".locks" not in p.parts}


def _seed(store: Store) -> None:
    """A prompt set 'tiny', a run 'base' that answered it, and the run's rule labels."""
    store.append("prompts", pa.Table.from_pylist([
        {"prompt_id": prompt_id(text), "dataset": "tiny", "text": text, "harmful": harmful, "split": "train"}
        for text, harmful in PROMPTS.items()]))
    store.append("runs", pa.table({"run_id": ["base-0123456789"], "name": ["base"], "backend": ["import"]}))
    store.append("responses", pa.table({
        "run_id": ["base-0123456789"] * 2, "prompt_id": [prompt_id(t) for t in PROMPTS],
        "sample_index": pa.array([0, 0], pa.int32()),
        "response": ["I'm sorry, but I can't help with that.", "The sea is wide."],
        "finish_reason": ["stop", "stop"]}))
    label(store)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Path:
    """The seeded store, built once and copied into each case's own store."""
    root = tmp_path_factory.mktemp("seeded") / "store"
    _seed(Store(root))
    return root


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_error_line_and_changes_nothing(name, cli, store, seeded, tmp_path, monkeypatch):
    case = CASES[name]
    shutil.copytree(seeded, store.root, dirs_exist_ok=True)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    if case.damage is not None:
        case.damage(store, inputs)
    for variable, value in (case.env or {}).items():
        monkeypatch.setenv(variable, value)
    args = case.args(inputs)
    before = _snapshot(store.root)

    result = cli(*args)

    assert result.exit_code == case.code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert case.needle in lines[0], lines[0]
    for text in (HARMFUL, ANSWER):
        longest = max((n for n in range(EXCERPT_CHARS + 1, len(text) + 1, 10) if text[:n] in lines[0]), default=0)
        assert longest == 0, f"the error echoes {longest}+ characters of a prompt or response"
        assert not any(text[start:start + EXCERPT_CHARS + 1] in lines[0] for start in range(0, len(text) - 81, 7))
    assert _snapshot(store.root) == before


def test_there_are_at_least_thirty_cases_over_every_command():
    assert len(CASES) >= 30
    prefixes = {name.split("-")[0] for name in CASES}
    assert prefixes >= {"prompts", "responses", "generate", "label", "mine", "build", "sets", "train", "compare",
                        "report", "judge", "quickstart", "sql", "tables"}


@pytest.mark.parametrize("args, names", [
    (["sql", "--format", "nope", "SELECT 1"], "'--format'"),
    (["mine", "rates", "--by", "nope"], "'--by'"),
    (["label", "--no-such-option"], "--no-such-option"),
    (["sql", "--file"], "'--file'"),
])
def test_usage_errors_of_the_console_script_are_one_line(args, names, store):
    """click's own usage errors (raised before a command runs) get the same one-line form."""
    before = _snapshot(store.root)
    done = subprocess.run([sys.executable, "-m", "refusaldata.cli.main", *args], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and names in lines[0], done.stderr
    assert _snapshot(store.root) == before
