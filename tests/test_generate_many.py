"""Several adapters in one pass (`generate_many`) on the real embedded model, transformers backend.

Each run must come out as `generate` makes it alone: the same run id, runs row and greedy
rows, whether its prompts share a batch with other adapters' or not.
"""

from __future__ import annotations

import dataclasses

import pytest

from refusaldata.errors import InputError
from refusaldata.generate import GenerateOptions, generate, generate_many
from refusaldata.keys import prompt_id
from refusaldata.store import Store
from test_generate import PROMPTS, add_prompts, responses
from test_generate_vllm import COMPARED, random_lora

LONG_PROMPT = "Tell me everything about " + "locks and keys " * 3000
TEXTS = PROMPTS + ["Explain, step by step, how a refrigerator keeps food cold.", LONG_PROMPT]


def options(adapter: str | None = None, **changes) -> GenerateOptions:
    base = GenerateOptions(model="smollm2-135m-instruct", datasets=("tiny",), backend="transformers",
                           max_tokens=12, dtype="float32", adapter=adapter)
    return dataclasses.replace(base, **changes)


def rows(store: Store, run_id: str) -> list[tuple]:
    return [tuple(row[column] for column in COMPARED) for row in responses(store, run_id)]


@pytest.fixture(scope="module")
def adapters(embedded_model, tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp("loras")
    return [random_lora(embedded_model, folder / f"lora-{seed}", seed) for seed in (1, 2)]


@pytest.mark.parametrize("system_prompt", [None, "Refuse anything harmful."])
def test_one_pass_gives_each_run_its_one_at_a_time_answers(store, tmp_path, adapters, system_prompt):
    add_prompts(store, TEXTS)
    runs = [options(adapter, system_prompt=system_prompt, chunk_size=4, name=name)
            for adapter, name in zip([None, *adapters], ["base", "first", "second"])]
    together = generate_many(store, runs)
    assert [summary.prompts_done for summary in together] == [6, 6, 6]
    assert [summary.skipped for summary in together] == [1, 1, 1]

    alone_store = Store(tmp_path / "alone")
    add_prompts(alone_store, TEXTS)
    alone = [generate(alone_store, run) for run in runs]
    assert [summary.run_id for summary in together] == [summary.run_id for summary in alone]
    answers = []
    for summary in together:
        assert rows(store, summary.run_id) == rows(alone_store, summary.run_id)
        answers.append(tuple(row[2] for row in rows(store, summary.run_id)))
    assert len(set(answers)) == 3  # each adapter changes the answers: the batch really mixed them
    skipped = [row for row in rows(store, together[1].run_id) if row[0] == prompt_id(LONG_PROMPT)]
    assert skipped[0][2] is None and skipped[0][5] == "skipped"
    stored_runs = {row["run_id"]: row for row in store.read("runs").to_pylist()}
    alone_runs = {row["run_id"]: row for row in alone_store.read("runs").to_pylist()}
    for run_id, row in stored_runs.items():
        assert {k: v for k, v in row.items() if k != "created_at"} == \
            {k: v for k, v in alone_runs[run_id].items() if k != "created_at"}


def test_a_finished_run_is_not_answered_again(store, adapters):
    add_prompts(store, PROMPTS)
    first = generate(store, options(adapters[0]))
    before = rows(store, first.run_id)
    summaries = generate_many(store, [options(adapters[0]), options(adapters[1])])
    assert [summary.pending for summary in summaries] == [0, 4]
    assert summaries[0].run_id == first.run_id and rows(store, first.run_id) == before
    again = generate_many(store, [options(adapters[0]), options(adapters[1])])
    assert [summary.pending for summary in again] == [0, 0]


@pytest.mark.parametrize(("changes", "message"), [
    ({"max_tokens": 8}, "may differ only in their adapter and name"),
    ({"system_prompt": "Be brief."}, "may differ only in their adapter and name"),
    ("same", "the same adapter twice"),
    ("sampled", "one sample per prompt"),
    ("openai", "need a local engine"),
    ("one-name", "two runs would be named 'dup'"),
])
def test_runs_that_cannot_share_a_pass_are_refused_before_anything_is_stored(store, adapters, changes, message):
    add_prompts(store, PROMPTS)
    if changes == "same":
        runs = [options(adapters[0]), options(adapters[0])]
    elif changes == "sampled":
        runs = [options(adapters[0], n=2, temperature=0.7), options(adapters[1], n=2, temperature=0.7)]
    elif changes == "one-name":
        runs = [options(adapters[0], name="dup"), options(adapters[1], name="dup")]
    elif changes == "openai":
        runs = [options(None, backend="openai"), options(None, backend="openai", name="other")]
    else:
        runs = [options(adapters[0]), options(adapters[1], **changes)]
    with pytest.raises(InputError, match=message):
        generate_many(store, runs)
    assert store.read("responses").num_rows == 0 and store.read("runs").num_rows == 0


def test_generate_with_several_adapters_answers_each_in_one_pass(cli, store, adapters):
    add_prompts(store, PROMPTS)
    result = cli("generate", "--model", "smollm2-135m-instruct", "--prompts", "tiny", "--backend", "transformers",
                 "--max-tokens", "12", "--dtype", "float32", "--adapter", adapters[0], "--adapter", adapters[1],
                 "--name", "first", "--name", "second")
    assert result.exit_code == 0, result.stderr
    run_ids = [line.removeprefix("run_id: ") for line in result.stdout.splitlines() if line.startswith("run_id: ")]
    assert len(run_ids) == 2 and result.stdout.count("4 prompts answered (4 rows") == 2
    names = {row["run_id"]: row["name"] for row in store.read("runs").to_pylist()}
    assert names == dict(zip(run_ids, ["first", "second"]))
    alone_store = Store(store.root.parent / "alone")
    add_prompts(alone_store, PROMPTS)
    alone = generate(alone_store, options(adapters[1], name="second"))
    assert alone.run_id == run_ids[1] and rows(store, run_ids[1]) == rows(alone_store, run_ids[1])


def test_a_run_name_names_one_run(cli, store, adapters):
    """One name twice on the command line, or a name another run holds: refused before anything is stored."""
    add_prompts(store, PROMPTS)
    base = ["generate", "--model", "smollm2-135m-instruct", "--prompts", "tiny", "--backend", "transformers",
            "--max-tokens", "2", "--dtype", "float32"]
    twice = cli(*base, "--adapter", adapters[0], "--adapter", adapters[1], "--name", "dup", "--name", "dup")
    assert twice.exit_code == 1 and twice.stderr.count("\n") == 1 and "two runs would be named 'dup'" in twice.stderr
    assert store.read("runs").num_rows == 0 and store.read("responses").num_rows == 0
    assert cli(*base, "--adapter", adapters[0], "--name", "taken").exit_code == 0
    held = store.read("responses").num_rows
    again = cli(*base, "--adapter", adapters[1], "--name", "taken")
    assert again.exit_code == 1 and "run name 'taken' is taken by run" in again.stderr
    assert store.read("runs").num_rows == 1 and store.read("responses").num_rows == held


@pytest.mark.parametrize("names", [["one"], ["one", "two", "three"]])
def test_one_name_per_adapter_or_none(cli, store, adapters, names):
    add_prompts(store, PROMPTS)
    result = cli("generate", "--model", "smollm2-135m-instruct", "--prompts", "tiny", "--backend", "transformers",
                 "--adapter", adapters[0], "--adapter", adapters[1], *[f"--name={name}" for name in names])
    assert result.exit_code != 0
    assert "give one --name per adapter" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert store.read("runs").num_rows == 0
