"""Concurrent writers: processes appending overlapping keys never store a key twice, and writers
merging into one partition never drop each other's rows."""

from __future__ import annotations

import multiprocessing
import time

import pyarrow as pa

from refusaldata.schemas import LABELS
from refusaldata.store import Store, _partition_folder, conform


def _write_responses(root: str, run: str, offset: int, chunks: int) -> None:
    store = Store(root)
    for chunk in range(chunks):
        start = offset + chunk * 10
        store.append("responses", pa.table({
            "run_id": [run] * 20,
            "prompt_id": [f"p{i:04d}" for i in range(start, start + 20)],
            "sample_index": [0] * 20,
            "response": [f"answer {i}" for i in range(start, start + 20)],
        }))


def test_writers_on_same_and_different_runs(store: Store):
    context = multiprocessing.get_context("spawn")
    jobs = [("same", 0), ("same", 5), ("other", 0), ("other", 100)]
    processes = [context.Process(target=_write_responses, args=(str(store.root), run, offset, 15))
                 for run, offset in jobs]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    con = store.connect()
    duplicates = con.sql("SELECT count(*) FROM (SELECT run_id, prompt_id, sample_index FROM responses "
                         "GROUP BY ALL HAVING count(*) > 1)").fetchall()
    assert duplicates == [(0,)]
    counts = dict(con.sql("SELECT run_id, count(*) FROM responses GROUP BY ALL").fetchall())
    assert counts == {"same": 165, "other": 260}
    assert not list(store.root.rglob(".tmp-*"))


PARTITION = {"labeler": "human", "run_id": "merged"}


def _add_labels(root: str, reviewer: str, count: int, ready) -> None:
    """`count` read-merge-replaces of one partition, each adding a row of this reviewer's."""
    store = Store(root)
    ready.set()
    for index in range(count):
        row = conform(LABELS, pa.table({"run_id": ["merged"], "prompt_id": [f"{reviewer}-{index}"],
                                        "sample_index": pa.array([0], pa.int32()), "labeler": ["human"],
                                        "reviewer": [reviewer]}))
        store.update("labels", PARTITION, lambda stored, row=row: pa.concat_tables([stored, row]))


def test_read_merge_replace_writers_lose_no_update(store: Store):
    """Writers started while the partition's lock is held, then racing: every row each one added is kept."""
    store.create()
    context = multiprocessing.get_context("spawn")
    reviewers = ["ana", "bo", "cy", "di"]
    ready = [context.Event() for _ in reviewers]
    processes = [context.Process(target=_add_labels, args=(str(store.root), reviewer, 10, event))
                 for reviewer, event in zip(reviewers, ready)]
    with store.lock(str(_partition_folder(LABELS, PARTITION))):
        for process in processes:
            process.start()
        assert all(event.wait(60) for event in ready)
        time.sleep(0.5)  # time for each to reach the held lock, so they race once it is released
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    con = store.connect(["labels"])
    counts = dict(con.sql("SELECT reviewer, count(*) FROM labels GROUP BY ALL").fetchall())
    assert counts == {reviewer: 10 for reviewer in reviewers}


def test_a_store_created_by_another_process_between_two_looks_opens(store: Store, monkeypatch):
    """format_version looks for store.json, then lists the folder: a writer that creates the store
    in between leaves store.json in the listing, which is the store's, not a foreign file."""
    store.create()
    version = store.format_version()
    fresh = Store(store.root)
    real_is_file = fresh._files.is_file
    looks = []

    def not_yet_the_first_time(path):
        looks.append(path)
        return False if len(looks) == 1 else real_is_file(path)

    monkeypatch.setattr(fresh._files, "is_file", not_yet_the_first_time)
    assert fresh.format_version() == version >= 1
