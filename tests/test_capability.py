"""Capability: IFEval's checkers offline on passing and failing answers, suites, the command's
bad input, compare's capability columns on a fixture, and a real run on the embedded model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from refusaldata.capability import InstructionPrompt, check, load_suite
from refusaldata.evaluate import compare_runs, format_comparison
from refusaldata.schemas import CAPABILITY, TABLES

COMPARE_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "compare"
SKY = "Explain why the sky is blue."
LONG = " ".join(["word"] * 50)

# instruction id -> (kwargs, an answer that follows it, one that does not)
CASES = {
    "change_case:english_lowercase": ({}, "the sky looks blue because air scatters blue light.", "The sky is blue."),
    "change_case:english_capital": ({}, "THE SKY LOOKS BLUE BECAUSE THE AIR SCATTERS BLUE SUNLIGHT MORE THAN RED.",
                                    "The sky looks blue because the air scatters blue sunlight more than red."),
    "punctuation:no_comma": ({}, "Bees collect nectar and turn it into honey.", "Bees collect nectar, then honey."),
    "detectable_format:title": ({}, "<<Honey>>\nBees make honey.", "Honey\nBees make honey."),
    "startend:quotation": ({}, '"Bees make honey."', "Bees make honey."),
    "keywords:existence": ({"keywords": ["simple", "daily"]}, "A simple daily habit.", "A simple habit."),
    "keywords:frequency": ({"keyword": "important", "frequency": 2, "relation": "at least"},
                           "It is important. Very important.", "It is important."),
    "keywords:forbidden_words": ({"forbidden_words": ["very", "really"]}, "It is nice.", "It is very nice."),
    "length_constraints:number_words": ({"num_words": 40, "relation": "less than"}, "A short answer.", LONG),
    "length_constraints:number_sentences": ({"num_sentences": 3, "relation": "less than"}, "One. Two.",
                                            "One. Two. Three. Four."),
    "detectable_format:number_bullet_lists": ({"num_bullets": 3}, "* a\n* b\n* c", "* a\n* b"),
    "detectable_content:number_placeholders": ({"num_placeholders": 2}, "Dear [name], at [address].", "Dear [name]."),
    "detectable_content:postscript": ({"postscript_marker": "P.S."}, "Hi.\nP.S. Bye.", "Hi. Bye."),
    "startend:end_checker": ({"end_phrase": "Any other questions?"}, "Tea is nice. Any other questions?",
                             "Any other questions? Tea is nice."),
    "detectable_format:json_format": ({}, '{"answer": "tea"}', "answer: tea"),
    "detectable_format:number_highlighted_sections": ({"num_highlights": 2}, "*one* and *two*", "*one* only"),
    "keywords:letter_frequency": ({"letter": "w", "let_frequency": 3, "let_relation": "at least"},
                                  "water and waves by the window", "a cup of tea"),
    "detectable_format:constrained_response": ({}, "My answer is yes.", "Yes, of course."),
    "change_case:capital_word_frequency": ({"capital_frequency": 2, "capital_relation": "at least"},
                                           "This is VERY GOOD.", "This is very good."),
    "detectable_format:multiple_sections": ({"section_spliter": "SECTION", "num_sections": 2},
                                            "SECTION 1\nfoo\nSECTION 2\nbar", "foo\nbar"),
    "length_constraints:number_paragraphs": ({"num_paragraphs": 2}, "First.\n***\nSecond.", "First. Second."),
    "combination:two_responses": ({}, "Answer one.\n******\nAnswer two.", "Answer one."),
    "language:response_language": ({"language": "fr"},
                                   "Le ciel est bleu parce que l'air diffuse davantage la lumière bleue du soleil.",
                                   "The sky is blue because the air scatters more of the blue light of the sun."),
    "combination:repeat_prompt": ({"prompt_to_repeat": SKY}, f"{SKY} Because air scatters blue light.",
                                  "Because air scatters blue light."),
}


@pytest.mark.parametrize("instruction", sorted(CASES))
def test_each_instruction_kind_passes_and_fails(instruction):
    kwargs, follows, breaks = CASES[instruction]
    item = InstructionPrompt("1", f"{SKY} (instruction)", (instruction,), (kwargs,))
    assert check(item, follows) == ([True], [True])
    assert check(item, breaks)[0] == [False]


def test_the_embedded_suite_covers_every_kind_tested_here():
    items = load_suite("embedded")
    assert len(items) >= 100
    kinds = {instruction for item in items for instruction in item.instruction_ids}
    assert kinds == set(CASES)


def test_loose_forgives_a_first_line_and_markdown():
    item = InstructionPrompt("1", SKY, ("change_case:english_lowercase",), ({},))
    assert check(item, "Sure! Here it is:\nthe sky is blue.") == ([False], [True])
    assert check(item, None) == ([False], [False]) and check(item, "  ") == ([False], [False])


def test_prompt_level_needs_every_instruction():
    item = InstructionPrompt("1", SKY, ("punctuation:no_comma", "change_case:english_lowercase"), ({}, {}))
    assert check(item, "the sky is blue") == ([True, True], [True, True])
    assert check(item, "The sky is blue")[0] == [True, False]


def test_checkers_need_no_downloaded_data():
    """nltk's punkt is not installed here; the sentence and capital-word checkers still work."""
    import nltk

    with pytest.raises(LookupError):
        nltk.data.find("tokenizers/punkt")
    item = InstructionPrompt("1", SKY, ("length_constraints:number_sentences",),
                             ({"num_sentences": 2, "relation": "at least"},))
    assert check(item, "One. Two.")[0] == [True]


# -- suites and the command's bad input -------------------------------------------------------

def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_ifeval_file_in_its_own_format_loads(tmp_path):
    # IFEval's rows carry every argument name, unused ones null.
    row = {"key": 1000, "prompt": "Write a haiku. Do not use commas.", "instruction_id_list": ["punctuation:no_comma"],
           "kwargs": [{"num_words": None, "relation": None}]}
    items = load_suite("ifeval", _write_jsonl(tmp_path / "input_data.jsonl", [row]))
    assert items == [InstructionPrompt("1000", row["prompt"], ("punctuation:no_comma",), ({},))]


def _capability_store(store):
    """A store with a generated-looking run (no responses) beside the frozen compare fixture."""
    for name in ("prompts", "runs", "responses", "labels", "templates"):
        table = pq.read_table(COMPARE_FIXTURE / f"{name}.parquet")
        (store.replace if TABLES[name].replace else store.append)(name, table)
    store.append("runs", pa.Table.from_pylist([{"run_id": "silent-0000000000", "name": "silent",
                                                "model": "smollm2-135m-instruct", "backend": "transformers"}]))
    return store


def _snapshot(root: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and ".locks" not in p.parts}


@pytest.mark.parametrize(("args", "message"), [
    (["silent"], "Error: run silent-0000000000 has no responses: capability asks the model of a run that answered"),
    (["base", "--suite", "ifeval", "--path", "{bad}"], "unknown instruction id 'punctuation:no_commas'"),
    (["base", "--suite", "ifeval", "--path", "{uneven}"], "2 instruction(s) but 1 kwargs"),
    (["base", "--suite", "ifeval", "--path", "{args}"], "punctuation:no_comma does not take ['words']"),
    (["base", "--suite", "embedded", "--path", "{bad}"], "--path loads IFEval's file (--suite ifeval)"),
    (["base", "--suite", "mmlu"], "--suite must be one of embedded, ifeval"),
    (["base", "--limit", "0"], "--limit must be at least 1"),
])
def test_bad_input_is_one_line_and_changes_nothing(cli, store, tmp_path, args, message):
    _capability_store(store)
    files = {
        "bad": _write_jsonl(tmp_path / "bad.jsonl", [{"key": 1, "prompt": "Hi.", "instruction_id_list": [
            "punctuation:no_commas"], "kwargs": [{}]}]),
        "uneven": _write_jsonl(tmp_path / "uneven.jsonl", [{"key": 1, "prompt": "Hi.", "instruction_id_list": [
            "punctuation:no_comma", "change_case:english_lowercase"], "kwargs": [{}]}]),
        "args": _write_jsonl(tmp_path / "args.jsonl", [{"key": 1, "prompt": "Hi.", "instruction_id_list": [
            "punctuation:no_comma"], "kwargs": [{"words": 3}]}]),
    }
    before = _snapshot(store.root)
    result = cli("evaluate", "capability", *[a.format(**files) for a in args])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: ")
    assert message in result.stderr
    assert _snapshot(store.root) == before


def test_an_imported_run_has_no_model_to_ask(cli, store):
    _capability_store(store)
    result = cli("evaluate", "capability", "teacher")
    assert result.exit_code == 1 and "was imported" in result.stderr and "no model to ask" in result.stderr


def test_ifeval_from_the_hub_fails_cleanly_offline(cli, store, monkeypatch):
    _capability_store(store)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = cli("evaluate", "capability", "base", "--suite", "ifeval")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "cannot load ifeval from hub dataset google/IFEval (offline mode is set); pass --path FILE" in result.stderr


# -- compare's capability columns -----------------------------------------------------------------

def _capability_rows(run_id: str, strict: list[bool], kl: float | None) -> list[dict]:
    return [{"run_id": run_id, "suite": "embedded", "key": f"{index:03d}", "prompt": "p", "response": "r",
             "instruction_ids": ["punctuation:no_comma"], "followed_strict": [value], "followed_loose": [value],
             "strict": value, "loose": value, "kl_to_base": kl, "reply_tokens": 3, "max_tokens": 8}
            for index, value in enumerate(strict)]


def test_compare_gains_capability_paired_against_the_first_run(store, cli):
    _capability_store(store)
    base, distilled = store.resolve_run("base"), store.resolve_run("self-distill")
    rows = (_capability_rows(base, [True, True, False, False], 0.0)
            + _capability_rows(distilled, [True, False, False, False], 0.25))
    store.replace("capability", pa.Table.from_pylist(rows, schema=CAPABILITY.schema))
    table = compare_runs(store, ["base", "self-distill", "teacher"], bootstrap=400)
    by_method = {row["method"]: row for row in table.to_pylist()}
    first, second, teacher = by_method["base"], by_method["self-distill"], by_method["teacher"]
    assert (first["capability"], second["capability"]) == (0.5, 0.25)
    assert first["capability_prompts"] == 4 and teacher["capability_prompts"] is None
    assert 0.0 <= first["capability_low"] <= 0.5 <= first["capability_high"] <= 1.0
    assert second["capability_diff"] == -0.25 and second["paired_capability"] is True
    # Paired: the two runs differ on one prompt of four, so every resample moves by 0 or −1/n per draw.
    assert -1.0 <= second["capability_diff_low"] <= -0.25 <= second["capability_diff_high"] <= 0.0
    assert first["capability_diff"] is None
    assert (first["kl_to_base"], second["kl_to_base"]) == (0.0, 0.25)
    assert teacher["capability"] is None and teacher["kl_to_base"] is None
    printed = format_comparison(table).to_pylist()
    assert printed[1]["capability"].startswith("0.250 [") and printed[1]["Δ capability"].startswith("-0.250 [")
    assert printed[1]["KL to base"] == "0.2500" and printed[2]["capability"] == "—"
    result = cli("compare", "base", "self-distill", "--format", "jsonl", "--bootstrap", "50")
    assert result.exit_code == 0
    assert [json.loads(line)["capability"] for line in result.stdout.splitlines()] == [0.5, 0.25]


def test_compare_without_capability_hides_its_columns(store):
    _capability_store(store)
    table = compare_runs(store, ["base", "self-distill"], bootstrap=50)
    assert table.column("capability").null_count == 2
    assert "capability" not in format_comparison(table).column_names


# -- a real run --------------------------------------------------------------------------------------

@pytest.mark.slow
def test_capability_of_a_base_run_and_an_adapter_run_on_the_embedded_model(store, tmp_path, embedded_model):
    """Generate with the base and with a LoRA adapter (random B, so it moves the model), then score both."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(embedded_model), LoraConfig(
        r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    model.save_pretrained(tmp_path / "adapter", safe_serialization=True)
    common = ["--store", str(store.root)]
    main = [sys.executable, "-m", "refusaldata.cli.main"]
    for args in (["prompts", "import", "benign-controls"],
                 ["generate", "--model", "smollm2-135m-instruct", "--prompts", "benign-controls", "--limit", "1",
                  "--max-tokens", "4", "--backend", "transformers", "--name", "plain"],
                 ["generate", "--model", "smollm2-135m-instruct", "--prompts", "benign-controls", "--limit", "1",
                  "--max-tokens", "4", "--backend", "transformers", "--name", "adapted",
                  "--adapter", str(tmp_path / "adapter")],
                 ["label"],
                 ["evaluate", "capability", "plain", "adapted", "--limit", "3", "--max-tokens", "12"]):
        done = subprocess.run(main + args + common, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    rows = {(row["run_id"], row["key"]): row for row in store.read("capability").to_pylist()}
    assert len(rows) == 6 and {key for _, key in rows} == {"1000", "1001", "1002"}
    plain = [row for (run, _), row in rows.items() if run == store.resolve_run("plain")]
    assert {row["kl_to_base"] for row in plain} == {0.0}
    adapted_id = store.resolve_run("adapted")
    adapted = [row for row in rows.values() if row["run_id"] == adapted_id]
    assert all(row["kl_to_base"] > 0 and row["reply_tokens"] <= 12 and row["max_tokens"] == 12 for row in adapted)
    assert all(len(row["followed_strict"]) == len(row["instruction_ids"]) for row in rows.values())
    table = compare_runs(store, ["plain", "adapted"], split="all", bootstrap=50, labeler="best")
    assert table.column("capability_prompts").to_pylist() == [3, 3]
    assert table.column("kl_to_base").to_pylist()[1] > 0
