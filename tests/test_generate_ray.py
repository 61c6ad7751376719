"""`generate --backend ray`: Ray Data workers on a local Ray cluster answer a run and store it."""

from __future__ import annotations

import pytest

from refusaldata.store import Store
from tiny_prompts import PROMPTS, add_prompts

pytest.importorskip("ray", reason="the ray backend needs the ray extra")
pytestmark = pytest.mark.slow

ARGS = ["--model", "smollm2-135m-instruct", "--prompts", "tiny", "--max-tokens", "3", "--chunk-size", "2"]


def answers(store: Store) -> list[tuple]:
    con = store.connect(["responses"])
    try:
        return con.sql("SELECT run_id, prompt_id, sample_index, response, finish_reason FROM responses "
                       "ORDER BY ALL").fetchall()
    finally:
        con.close()


def test_ray_workers_store_the_run_a_local_engine_stores(cli, store, tmp_path, embedded_model, monkeypatch):
    monkeypatch.setenv("REFUSALDATA_THREADS", "1")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    add_prompts(store, PROMPTS[:3])
    ray_run = cli("generate", *ARGS, "--backend", "ray", "--ray-engine", "transformers", "--ray-workers", "1")
    assert ray_run.exit_code == 0, ray_run.output
    assert "3 prompts answered (3 rows" in ray_run.stdout and "ray/transformers" in ray_run.stdout

    local = Store(tmp_path / "local")
    add_prompts(local, PROMPTS[:3])
    local_run = cli("generate", *ARGS, "--backend", "transformers", "--store", str(local.root))
    assert local_run.exit_code == 0, local_run.output
    assert ray_run.stdout.splitlines()[0] == local_run.stdout.splitlines()[0]  # the same run id
    assert answers(store) == answers(local)
    assert "already answered" in cli("generate", *ARGS, "--backend", "ray", "--ray-engine", "transformers").stdout
