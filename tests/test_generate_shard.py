"""`generate --shard I/N` and `generate --status`: shards in any order fill the one run one process fills."""

from __future__ import annotations

import pytest

from refusaldata.generate import shard_of
from refusaldata.keys import prompt_id
from tiny_prompts import PROMPTS, add_prompts

GENERATE = ["generate", "--model", "smollm2-135m-instruct", "--prompts", "tiny", "--backend", "transformers",
            "--max-tokens", "4", "--chunk-size", "2"]


def stored(store) -> list[tuple]:
    con = store.connect(["responses"])
    try:
        return con.sql("SELECT run_id, prompt_id, sample_index, response, n_output_tokens, finish_reason "
                       "FROM responses ORDER BY ALL").fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("shard", ["2/2", "a/b", "0/0", "-1/2", "1", "1/2/3"])
def test_a_bad_shard_is_a_one_line_error(cli, store, shard):
    add_prompts(store)
    result = cli(*GENERATE, "--shard", shard)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: --shard must be I/N with 0 <= I < N (0/4 is the first of four shards), not '{shard}'"]
    assert store.count("runs") == 0


def test_an_empty_shard_is_refused_as_an_empty_value(cli, store):
    add_prompts(store)
    result = cli(*GENERATE, "--shard", "")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: Invalid value for '--shard': is empty; give a value, or leave it out for the default "
        "(see `refusaldata generate --help`)"]
    assert store.count("runs") == 0


def test_shards_partition_the_prompts_the_same_way_everywhere():
    ids = [prompt_id(f"prompt {i}") for i in range(2000)]
    for count in (1, 2, 7):
        owners = [shard_of(pid, count) for pid in ids]
        assert set(owners) == set(range(count))
        assert min(owners.count(i) for i in range(count)) > 0.8 * len(ids) / count
    assert [shard_of(pid, 4) for pid in ids[:8]] == [shard_of(pid, 4) for pid in ids[:8]]


@pytest.mark.slow
def test_shards_in_reverse_order_give_the_one_process_table_and_status_follows(cli, store, tmp_path,
                                                                                embedded_model):
    from refusaldata.store import Store

    single = Store(tmp_path / "single")
    add_prompts(single)
    one = cli(*GENERATE, "--store", str(single.root))
    assert one.exit_code == 0, one.output
    add_prompts(store)
    owned = sum(shard_of(prompt_id(text), 2) == 1 for text in PROMPTS)

    last = cli(*GENERATE, "--shard", "1/2")
    assert last.exit_code == 0, last.output
    assert f"shard 1/2: {owned} prompts answered" in last.stdout
    status = cli("generate", "--status", "smollm2")
    assert f"{owned} of {len(PROMPTS)} prompts answered ({100 * owned / len(PROMPTS):.1f}%)" in status.stdout
    first = cli(*GENERATE, "--shard", "0/2")
    assert first.exit_code == 0, first.output
    assert f"shard 0/2: {len(PROMPTS) - owned} prompts answered" in first.stdout

    assert one.stdout.splitlines()[0] == last.stdout.splitlines()[0] == first.stdout.splitlines()[0]
    assert stored(store) == stored(single)
    assert store.count("runs") == 1 and store.duplicate_keys("responses") == 0
    assert "all" in cli(*GENERATE, "--shard", "0/2").stdout.splitlines()[-1]
    assert f"{len(PROMPTS)} of {len(PROMPTS)} prompts answered (100.0%)" in cli("generate", "--status",
                                                                                 "smollm2").stdout
