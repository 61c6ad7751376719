"""Crashes and concurrent writers: SIGKILLed commands resume, parallel writers never duplicate a key.

Every command runs as a real subprocess (the console script's module) on the embedded
model with the transformers backend, one torch thread each, so fp32 greedy outputs are
bit-comparable with an uninterrupted run. Kills are timed by watching the store
(the runs row, the first part file, a temp file in flight), never by sleeping blindly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from refusaldata.keys import prompt_id
from refusaldata.store import Store
from tiny_prompts import PROMPTS, add_prompts
GENERATE = ["generate", "--model", "smollm2-135m-instruct", "--prompts", "tiny", "--backend", "transformers",
            "--dtype", "float32", "--chunk-size", "1"]
COLUMNS = ["run_id", "prompt_id", "sample_index", "response", "n_prompt_tokens", "n_output_tokens", "finish_reason"]
DEADLINE_S = 240

pytestmark = pytest.mark.slow


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "refusaldata.cli.main", *[str(a) for a in args]]


def environment(store: Store) -> dict[str, str]:
    return {**os.environ, "REFUSALDATA_STORE": str(store.root), "REFUSALDATA_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def start(store: Store, *args: str) -> subprocess.Popen:
    return subprocess.Popen(command(*args), env=environment(store), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def run(store: Store, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(command(*args), env=environment(store), capture_output=True, text=True, timeout=DEADLINE_S)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def kill_when(process: subprocess.Popen, ready, poll_s: float = 0.002) -> bool:
    """SIGKILL `process` as soon as `ready()` holds; False when it finished first."""
    deadline = time.monotonic() + DEADLINE_S
    try:
        while time.monotonic() < deadline:
            if ready():
                os.kill(process.pid, signal.SIGKILL)
                return True
            if process.poll() is not None:
                return False
            time.sleep(poll_s)
        raise AssertionError("the process neither reached the kill point nor finished")
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.communicate()


def parts(store: Store, table: str) -> list[Path]:
    folder = store.root / table
    return [p for p in folder.rglob("*.parquet") if not p.name.startswith(".")] if folder.is_dir() else []


def temp_files(store: Store, table: str) -> list[Path]:
    folder = store.root / table
    return list(folder.rglob(".tmp-*")) if folder.is_dir() else []


def responses(store: Store, run_id: str | None = None) -> list[dict]:
    con = store.connect(["responses"])
    try:
        return con.sql(f"SELECT {', '.join(COLUMNS)} FROM responses WHERE $run IS NULL OR run_id = $run "
                       "ORDER BY run_id, prompt_id, sample_index", params={"run": run_id}).to_arrow_table().to_pylist()
    finally:
        con.close()


def duplicate_keys(store: Store, table: str, key: list[str]) -> int:
    con = store.connect([table])
    try:
        columns = ", ".join(key)
        return con.sql(f"SELECT count(*) FROM (SELECT {columns} FROM {table} GROUP BY ALL HAVING count(*) > 1)"
                       ).fetchall()[0][0]
    finally:
        con.close()


def run_id_of(output: str) -> str:
    return next(line.removeprefix("run_id: ") for line in output.splitlines() if line.startswith("run_id: "))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, embedded_model) -> dict:
    """An uninterrupted fp32 greedy run of each max-tokens setting the tests use, in its own store."""
    store = Store(tmp_path_factory.mktemp("reference") / "store")
    add_prompts(store)
    runs = {}
    for max_tokens in (12, 6):
        runs[max_tokens] = run_id_of(run(store, *GENERATE, "--max-tokens", max_tokens).stdout)
    return {max_tokens: responses(store, run_id) for max_tokens, run_id in runs.items()} | {"runs": runs}


def test_generate_killed_at_every_stage_resumes_to_the_uninterrupted_table(store, reference):
    add_prompts(store)
    args = [*GENERATE, "--max-tokens", "12"]
    response_parts = lambda: len(parts(store, "responses"))  # noqa: E731

    # 1. While the model loads: the runs row is stored, no response yet.
    kill_when(start(store, *args), lambda: bool(parts(store, "runs")))
    assert store.count("runs") == 1
    # 2. Right after the first chunk lands.
    stored = response_parts()
    kill_when(start(store, *args), lambda: response_parts() > stored)
    # 3. Mid-write: as soon as a temp file is in flight (or, on a fast machine, the next part lands).
    stored = response_parts()
    kill_when(start(store, *args), lambda: bool(temp_files(store, "responses")) or response_parts() > stored,
              poll_s=0.0005)
    # 4. What a kill between write and rename leaves: a complete and a torn temp file.
    folder = store.root / "responses" / f"run={reference['runs'][12]}"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"run_id": ["x"]}), folder / ".tmp-0000complete.parquet")
    (folder / ".tmp-0001torn.parquet").write_bytes(b"PAR1\x00\x01torn")

    partial = responses(store)
    assert len(partial) < len(PROMPTS), "the kills came too late to interrupt anything"
    assert all(name.name.startswith(".tmp-") for name in temp_files(store, "responses"))
    assert not any(p.name.startswith(".") for p in store.files("responses"))

    rerun = run(store, *args)
    assert f"{len(PROMPTS) - len(partial)} prompts answered" in rerun.stdout
    assert duplicate_keys(store, "responses", ["run_id", "prompt_id", "sample_index"]) == 0
    assert store.count("runs") == 1 and run_id_of(rerun.stdout) == reference["runs"][12]
    assert responses(store) == reference[12]
    assert "all 6 prompts already answered" in run(store, *args).stdout


def test_concurrent_generators_on_two_runs_and_one_run_store_each_key_once(store, reference):
    """Two processes on one run (the run lock) and one on another run (other partitions), at once."""
    add_prompts(store)
    processes = [start(store, *GENERATE, "--max-tokens", "12"), start(store, *GENERATE, "--max-tokens", "12"),
                 start(store, *GENERATE, "--max-tokens", "6")]
    outputs = [process.communicate(timeout=DEADLINE_S) for process in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], [err[-1000:] for _, err in outputs]
    assert duplicate_keys(store, "responses", ["run_id", "prompt_id", "sample_index"]) == 0
    assert duplicate_keys(store, "runs", ["run_id"]) == 0
    assert responses(store, reference["runs"][12]) == reference[12]
    assert responses(store, reference["runs"][6]) == reference[6]
    assert store.count("runs") == 2
    same_run = [out for out, _ in outputs[:2]]
    assert sum("already answered" in out or "6 were already stored" in out for out in same_run) >= 1


def test_store_comment_justifies_the_concurrency_scheme():
    """Readers rely on a documented scheme: a per-partition lock plus an anti-join, and a per-run lock."""
    from refusaldata import generate, store

    assert "under an exclusive lock per partition" in store.__doc__ and "anti-join" in store.__doc__
    assert "a second one waits here" in Path(generate.__file__).read_text()


# -- train ---------------------------------------------------------------------------------------------------

def refusal_set(store: Store) -> None:
    store.replace("sft", pa.Table.from_pylist([
        {"set_name": "refuse", "mode": "baseline", "kind": "refusal", "prompt_id": prompt_id(text), "split": "train",
         "prompt": text, "target": "I'm sorry, but I can't help with that."} for text in PROMPTS[:4]]))


def train_args(out: Path, steps: int) -> list[str]:
    return ["train", "--set", "refuse", "--model", "smollm2-135m-instruct", "--out", str(out), "--max-steps",
            str(steps), "--batch-size", "2", "--max-length", "48", "--threads", "1", "--checkpoint-every", "1",
            "--format", "jsonl"]


def metric_steps(store: Store) -> list[tuple[int, int]]:
    con = store.connect(["train_metrics"])
    try:
        return con.sql("SELECT step, count(*) FROM train_metrics GROUP BY step ORDER BY step").fetchall()
    finally:
        con.close()


def test_train_killed_after_a_checkpoint_then_torn_restarts_cleanly_and_the_adapter_loads(store, tmp_path,
                                                                                          embedded_model):
    refusal_set(store)
    out = tmp_path / "adapter"
    args = train_args(out, 3)
    assert kill_when(start(store, *args), lambda: (out / "checkpoint.json").exists())
    pointer = json.loads((out / "checkpoint.json").read_text())
    assert not (out / "adapter_model.safetensors").exists()
    # A kill while the next checkpoint's weights were written tears them: the run must not resume from it.
    weights = out / pointer["folder"] / "adapter.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])

    row = json.loads(run(store, *args).stdout.strip().splitlines()[-1])
    assert row["steps"] == 3 and row["resumed_from_step"] == 0
    assert not list(out.glob("checkpoint*"))
    assert metric_steps(store) == [(1, 1), (2, 1), (3, 1)]
    assert store.count("adapters") == 1

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from refusaldata.generate.chat import Adapter

    assert Adapter.load(str(out)).rank == 8
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(embedded_model, use_safetensors=True),
                                      str(out), use_safetensors=True)
    assert sum("lora_" in name for name, _ in model.named_parameters()) == 30 * 2 * 2


# A `train` process that SIGKILLs itself at checkpoint {step}: before its save, so after the metrics it
# covers are stored ("before"), or right after it, before the next metrics are ("after").
KILLED_AT_CHECKPOINT = """
import os, signal, sys
from refusaldata.cli.main import run
from refusaldata.train import checkpoint

def save(out, step, *args, real=checkpoint.save, **kwargs):
    if step == {step} and "{boundary}" == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    real(out, step, *args, **kwargs)
    if step == {step}:
        os.kill(os.getpid(), signal.SIGKILL)

checkpoint.save = save
sys.exit(run(sys.argv[1:]))
"""


@pytest.mark.parametrize("boundary, resumed_from", [("before", 1), ("after", 2)])
def test_train_killed_beside_a_checkpoint_stores_one_metrics_row_per_step(store, tmp_path, embedded_model,
                                                                          boundary, resumed_from):
    """Every step a checkpoint covers has its metrics stored before it; steps redone after a kill are not doubled."""
    refusal_set(store)
    out = tmp_path / "adapter"
    script = KILLED_AT_CHECKPOINT.format(step=2, boundary=boundary)
    killed = subprocess.run([sys.executable, "-c", script, *train_args(out, 4)], env=environment(store),
                            capture_output=True, text=True, timeout=DEADLINE_S)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert json.loads((out / "checkpoint.json").read_text())["step"] == resumed_from
    assert metric_steps(store) == [(1, 1), (2, 1)]

    row = json.loads(run(store, *train_args(out, 4)).stdout.strip().splitlines()[-1])
    assert (row["steps"], row["resumed_from_step"]) == (4, resumed_from)
    assert metric_steps(store) == [(1, 1), (2, 1), (3, 1), (4, 1)]


# -- build-sft -----------------------------------------------------------------------------------------------

def test_build_sft_killed_during_a_rebuild_leaves_the_old_set_or_the_new_one(store):
    from refusaldata.distill import build_sft
    from refusaldata.schemas import TABLES

    for path in sorted((Path(__file__).parent / "fixtures" / "distill").glob("*.parquet")):
        (store.replace if TABLES[path.stem].replace else store.append)(path.stem, pq.read_table(path))

    def current(name: str) -> list[dict]:
        con = store.connect(["sft"])
        try:
            return con.sql("SELECT * EXCLUDE (created_at) FROM sft WHERE set_name = $name ORDER BY kind, prompt_id",
                           params={"name": name}).to_arrow_table().to_pylist()
        finally:
            con.close()

    def build_old() -> None:  # in-process: only the rebuild under test needs a process to kill
        build_sft(store, "x", "student", "baseline", max_examples=1, retention_ratio=0, replace=True)

    new_args = ["build-sft", "x", "--student", "student", "--mode", "self", "--replace"]
    build_old()
    build_sft(store, "keep", "student", "baseline")
    old, keep = current("x"), current("keep")
    seen = []
    for delay in (2.0, 3.5, 6.0):
        started = time.monotonic()
        def ready(started=started, delay=delay) -> bool:
            return bool(temp_files(store, "sft")) or time.monotonic() - started > delay

        kill_when(start(store, *new_args), ready, poll_s=0.0005)
        seen.append(current("x"))
        assert current("keep") == keep
        build_old()
    run(store, *new_args)
    new = current("x")
    assert new != old and len(new) > len(old)
    assert all(state in (old, new) for state in seen)
    assert not any(p.name.startswith(".") for p in store.files("sft"))
    assert len(parts(store, "sft")) == 2
