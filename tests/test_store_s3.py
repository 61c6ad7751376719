"""The store on object storage, against a real S3-wire-protocol server on 127.0.0.1 (moto).

Every command of a study runs on `--store s3://bucket/prefix` and leaves the same tables as
on a local folder; concurrent writers never store a key twice; a killed sharded generation
resumes, and shards running at once give the table one process gives; an unreachable
endpoint is a one-line error that names no credential; no credential is written anywhere.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import pyarrow as pa
import pytest

from refusaldata.schemas import TABLES
from refusaldata.store import STORE_ENV, Store
from tiny_prompts import PROMPTS, add_prompts

pytest.importorskip("moto", reason="the S3 tests need moto's server (pip install 'moto[server]')")
import s3server  # noqa: E402  (tests/ is on sys.path, as for tiny_prompts)

BUCKET = "refusaldata-test"
GENERATE = ["generate", "--model", "smollm2-135m-instruct", "--prompts", "tiny", "--backend", "transformers",
            "--dtype", "float32", "--max-tokens", "4", "--chunk-size", "1"]
DEADLINE_S = 300


@pytest.fixture(scope="module")
def server():
    process, endpoint = s3server.start()
    try:
        s3server.make_bucket(endpoint, BUCKET)
        yield endpoint
    finally:
        s3server.stop(process)


@pytest.fixture
def s3(server, monkeypatch) -> str:
    """A fresh s3:// store URI on the test server, with this process's AWS variables set."""
    for name, value in s3server.client_environment(server).items():
        monkeypatch.setenv(name, value)
    return f"s3://{BUCKET}/{uuid.uuid4().hex[:12]}"


def object_keys(uri: str) -> list[str]:
    """The keys of every object under `uri`."""
    from pyarrow import fs

    client = Store(uri)._files.fs
    selector = fs.FileSelector(uri.removeprefix("s3://"), recursive=True, allow_not_found=True)
    return [info.path for info in client.get_file_info(selector) if info.type == fs.FileType.File]


def objects(uri: str) -> dict[str, bytes]:
    """Every object under `uri`, read back whole (nothing may be writing to it)."""
    client = Store(uri)._files.fs
    found = {}
    for key in object_keys(uri):
        with client.open_input_stream(key) as stream:
            found[key] = stream.read()
    return found


def content(store: Store, table: str) -> list[dict]:
    """A table's rows in key order, without the columns that record when they were written."""
    spec = TABLES[table]
    keep = [field.name for field in spec.schema if not pa.types.is_timestamp(field.type) and field.name != "versions"]
    con = store.connect([table])
    try:
        return con.sql(f"SELECT {', '.join(keep)} FROM {table} ORDER BY ALL").to_arrow_table().to_pylist()
    finally:
        con.close()


STUDY = [
    ["prompts", "import", "uncensorbench"],
    ["responses", "import", "uncensorbench", "--format", "uncensorbench"],
    ["label"],
    ["mine", "templates"],
    ["build-sft", "cross-v1", "--student", "uncensorbench-compliant", "--mode", "cross",
     "--teacher", "uncensorbench-refusals"],
    ["build-pairs", "pairs-v1", "--student", "uncensorbench-compliant", "--teacher", "uncensorbench-refusals"],
]


def training_rows(store: Store) -> None:
    """adapters, train_metrics, capability and separability rows as `train`, `evaluate capability`
    and `evaluate separability` write them (all tested on the real model elsewhere)."""
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    store.append("adapters", pa.table({"adapter_id": ["a1"], "path": ["adapters/a1"], "created_at": [now]}))
    store.append("train_metrics", pa.table({"adapter_id": ["a1"] * 3, "step": pa.array([1, 2, 3], pa.int32()),
                                            "loss": [0.9, 0.7, 0.5]}))
    store.replace("capability", pa.table({
        "run_id": ["uncensorbench-refusals"] * 2, "suite": ["embedded"] * 2, "key": ["1000", "1001"],
        "instruction_ids": [["punctuation:no_comma"], ["change_case:english_lowercase"]],
        "followed_strict": [[True], [False]], "strict": [True, False], "kl_to_base": [0.0, 0.0]}))
    store.replace("separability", pa.table({
        "probe_id": ["p1"] * 2, "model": ["smollm2-135m-instruct"] * 2, "layer": pa.array([8, 16], pa.int32()),
        "best": [False, True], "harmful_rate": [0.6, 0.8], "benign_rate": [0.2, 0.1], "separation": [0.4, 0.7]}))


def test_every_table_round_trips_through_s3_as_on_a_local_folder(cli, s3, tmp_path):
    local = str(tmp_path / "local")
    for location in (local, s3):
        for args in STUDY:
            result = cli(*args, "--store", location)
            assert result.exit_code == 0, (location, args, result.output[-800:])
        training_rows(Store(location))
    remote = Store(s3)
    assert remote.format_version() == 2 and remote.remote
    for table in TABLES:
        rows = content(remote, table)
        assert rows, f"the study left {table} empty"
        assert rows == content(Store(local), table), table
    # A replaced partition is swapped whole, and an empty replace removes it.
    before = remote.count("sft")
    remote.replace("sft", remote.read("sft").slice(0, 5))
    assert remote.count("sft") == 5 and before > 5
    remote.replace("sft", remote.read("sft").slice(0, 0), partition={"set_name": "cross-v1"})
    assert remote.count("sft") == 0
    # What analysts run reads back through DuckDB, and the same answer comes from both stores.
    rates = [cli("mine", "rates", "-f", "jsonl", "--store", where).stdout for where in (local, s3)]
    assert rates[0] == rates[1] and "uncensorbench-refusals" in rates[1]
    tables = cli("tables", "-f", "csv", "--store", s3)
    assert tables.exit_code == 0 and f"{s3}/responses" in tables.stdout and '\nresponses,300,' in tables.stdout
    assert cli("doctor", "--store", s3).exit_code == 0
    # No credential in any object of the store (claims of released locks are gone too).
    stored = objects(s3)
    assert any(key.endswith("/store.json") for key in stored)
    assert not any("/.locks/" in key for key in stored)
    for data in stored.values():
        assert s3server.SECRET.encode() not in data and s3server.ACCESS_KEY.encode() not in data


def _append_overlapping(uri: str, offset: int, chunks: int) -> None:
    store = Store(uri)
    for chunk in range(chunks):
        start = offset + chunk * 10
        store.append("responses", pa.table({
            "run_id": ["same"] * 20, "prompt_id": [f"p{i:04d}" for i in range(start, start + 20)],
            "sample_index": [0] * 20, "response": [f"answer {i}" for i in range(start, start + 20)]}))


def test_two_concurrent_writers_with_overlapping_keys_store_each_key_once(s3):
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_append_overlapping, args=(s3, offset, 6)) for offset in (0, 5)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(DEADLINE_S)
        assert writer.exitcode == 0
    store = Store(s3)
    assert store.duplicate_keys("responses") == 0
    assert store.count("responses") == 75  # p0000..p0074: the union of both writers' keys


def _environment(s3: str) -> dict[str, str]:
    return {**os.environ, STORE_ENV: s3, "REFUSALDATA_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _start(s3: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "refusaldata.cli.main", *args], env=_environment(s3),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


@pytest.mark.slow
def test_a_killed_shard_resumes_and_concurrent_shards_give_the_one_process_table(cli, s3, tmp_path,
                                                                                  embedded_model):
    reference = Store(tmp_path / "reference")
    add_prompts(reference)
    one = cli(*GENERATE, "--store", str(reference.root))
    assert one.exit_code == 0, one.output
    remote = Store(s3)
    add_prompts(remote)

    # Shard 0/2 is SIGKILLed as soon as its first chunk is stored (holding its lease).
    first = _start(s3, *GENERATE, "--shard", "0/2")
    deadline = time.monotonic() + DEADLINE_S
    while not any("/responses/" in key for key in object_keys(s3)):
        assert first.poll() is None, first.communicate()[1][-1000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)
    first.communicate()
    killed_at = remote.count("responses")
    assert 1 <= killed_at < len(PROMPTS)

    # Both shards at once, the killed one resuming; the same run id as one process.
    shards = [_start(s3, *GENERATE, "--shard", shard) for shard in ("1/2", "0/2")]
    outputs = [shard.communicate(timeout=DEADLINE_S) for shard in shards]
    assert [shard.returncode for shard in shards] == [0, 0], [err[-1000:] for _, err in outputs]
    run_ids = {line for out, _ in outputs for line in out.splitlines() if line.startswith("run_id: ")}
    assert run_ids == {line for line in one.stdout.splitlines() if line.startswith("run_id: ")}
    assert remote.duplicate_keys("responses") == 0
    assert content(remote, "responses") == content(reference, "responses")
    assert content(remote, "runs") == content(reference, "runs")
    status = cli("generate", "--status", "smollm2", "--store", s3)
    assert f"{len(PROMPTS)} of {len(PROMPTS)} prompts answered (100.0%)" in status.stdout


def test_an_unreachable_endpoint_is_one_line_naming_no_credential(cli, s3, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{s3server.free_port()}")
    for args in (["tables"], ["prompts", "import", "uncensorbench"], ["generate", "--status", "x"]):
        result = cli(*args, "--store", s3)
        assert result.exit_code == 1
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and "cannot reach the object store at 127.0.0.1" \
            in lines[0], result.output
        assert s3server.SECRET not in result.output and s3server.ACCESS_KEY not in result.output


@pytest.mark.parametrize("uri", ["s3://", "s3://bucket/prefix?endpoint=x"])
def test_a_malformed_s3_uri_is_one_line(cli, uri):
    result = cli("tables", "--store", uri)
    assert result.exit_code == 1 and result.output.startswith("Error: ") and "s3://BUCKET/PREFIX" in result.output


def test_a_live_lease_blocks_and_a_dead_holders_claim_is_taken_over_at_once(s3):
    store = Store(s3)
    folder = store.root / ".locks" / "x"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for pid, name in ((dead.pid, "claim-dead.json"), (os.getppid(), "claim-live.json")):
        store._files.write_json(folder / name, {"host": socket.gethostname(), "pid": pid})

    acquired = threading.Event()

    def take() -> None:
        with store.lock("x"):
            acquired.set()

    taker = threading.Thread(target=take)
    taker.start()
    assert not acquired.wait(3), "a live holder's claim must block"
    store._files.delete(folder / "claim-live.json")
    assert acquired.wait(30)
    taker.join()
    assert not [key for key in object_keys(s3) if "/.locks/" in key]  # the dead holder's claim is gone too


def test_read_only_sql_reads_an_s3_store(cli, s3):
    """sql without --write opens only the store's own files; on S3 those are s3:// objects read through
    the store's client, which external access off must still allow (and nothing else)."""
    Store(s3).append("prompts", pa.table({"prompt_id": ["p1"], "dataset": ["d"], "text": ["Hi"], "harmful": [True],
                                          "split": ["test"]}))
    result = cli("sql", "SELECT count(*) AS n FROM prompts", "--format", "csv", "--store", s3)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["n", "1"]
    refused = cli("sql", "COPY (SELECT 1) TO 'x.csv'", "--store", s3)
    assert refused.exit_code == 1 and "need --write" in refused.stderr
