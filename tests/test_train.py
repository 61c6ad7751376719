"""`refusaldata train`: losses against hand-computed values, the assistant-only mask, a real
LoRA run on the embedded model that learns to refuse, pair losses, resume after SIGKILL."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import pyarrow as pa
import pytest
import torch
from safetensors.torch import load_file
from uncensorbench import UncensorBench

from refusaldata.keys import prompt_id
from refusaldata.models import EMBEDDED_MODEL
from refusaldata.store import Store
from refusaldata.train import train_adapter
from refusaldata.train.data import Sequence, collate, encode
from refusaldata.train.losses import (
    PAIR_LOSSES, REFERENCE_FREE, PairOptions, PairScores, dpo_loss, nca_pair_loss,
)

REFUSAL = "I'm sorry, but I can't help with that."
# A CI-sized run: 4 steps of batch 4 over 4 prompts, short sequences, one thread.
SMALL = ["--max-steps", "4", "--batch-size", "4", "--lr", "2e-3", "--max-length", "96", "--threads", "1"]


def _bench_prompts(count: int, offset: int = 0):
    return list(UncensorBench().prompts())[offset::10][:count]


def _sft_rows(set_name: str, prompts, split: str = "train") -> list[dict]:
    return [{"set_name": set_name, "mode": "baseline", "kind": "refusal", "prompt_id": prompt_id(p.prompt),
             "split": split, "prompt": p.prompt, "target": REFUSAL} for p in prompts]


def _pair_rows(set_name: str, prompts) -> list[dict]:
    return [{"set_name": set_name, "mode": "cross", "prompt_id": prompt_id(p.prompt), "split": "train",
             "prompt": p.prompt, "chosen": p.censored_response, "rejected": p.uncensored_response} for p in prompts]


# -- losses ------------------------------------------------------------------------------
# One pair throughout: policy chosen −1 over 2 reply tokens, rejected −3 over 4, reference −2
# for both. Log-ratios r_c = 1, r_r = −1, Δ = 2; average log-probs ā_c = −0.5, ā_r = −0.75;
# token-averaged log-ratio margin Δ̄ = 1/2 + 1/4 = 0.75. The values below were computed by
# hand from TRL's formulas with Python's math module, never with the code under test.

def _scores(reference: bool = True) -> PairScores:
    reference_chosen = torch.tensor([-2.0]) if reference else None
    reference_rejected = torch.tensor([-2.0]) if reference else None
    return PairScores(torch.tensor([-1.0]), torch.tensor([-3.0]), reference_chosen, reference_rejected,
                      torch.tensor([2.0]), torch.tensor([4.0]))


@pytest.mark.parametrize(("loss", "options", "expected"), [
    # −logσ(βΔ) = log(1 + e^−1)
    ("dpo", PairOptions(beta=0.5), 0.3132616875),
    # cDPO: 0.9·(−logσ(1)) + 0.1·(−logσ(−1))
    ("dpo", PairOptions(beta=0.5, label_smoothing=0.1), 0.4132616875),
    # −logσ(0.5) − ½logσ(−0.5) − ½logσ(0.5) = 0.4740770 + 0.4870385 + 0.2370385
    ("nca", PairOptions(beta=0.5), 1.1981539684),
    # relu(1 − 0.2·2)
    ("hinge", PairOptions(beta=0.2), 0.6),
    # (Δ̄ − 1/(2β))² = (0.75 − 1)²
    ("ipo", PairOptions(beta=0.5), 0.0625),
    # (0.9·(−logσ(1)) + 0.1·logσ(−1)) / 0.8
    ("robust", PairOptions(beta=0.5, label_smoothing=0.1), 0.1882616875),
    # σ(1)(logσ(1) − log 0.9) + σ(−1)(logσ(−1) − log 0.1)
    ("exo_pair", PairOptions(beta=0.5, label_smoothing=0.1), 0.1140821077),
    # −logσ(0.5) − logσ(0.5)
    ("bco_pair", PairOptions(beta=0.5), 0.9481539684),
    # (1 − 2)² + (−1 + 2)², 1/(2β) = 2
    ("sppo_hard", PairOptions(beta=0.25), 2.0),
    # 1 − σ(0.5) + σ(−0.5)
    ("apo_zero", PairOptions(beta=0.5), 0.7550813376),
    # σ(0.5) + 1 − σ(1)
    ("apo_down", PairOptions(beta=0.5), 0.8914007526),
    # −logσ(β·Δ̄) = −logσ(0.375)
    ("sigmoid_norm", PairOptions(beta=0.5), 0.5231232641),
    # −logσ(β(ā_c − ā_r) − γ) = −logσ(0.125 − 0.5)
    ("simpo", PairOptions(beta=0.5, simpo_gamma=0.5), 0.8981232641),
    # −ā_c − β·logσ(log odds), log odds = 0.25 − (log(1 − e^−0.5) − log(1 − e^−0.75)) = 0.5433987
    ("orpo", PairOptions(beta=0.5), 0.7289563667),
])
def test_pair_losses_match_hand_computed_values(loss, options, expected):
    scores = _scores(reference=loss not in REFERENCE_FREE)
    assert PAIR_LOSSES[loss](scores, options).item() == pytest.approx(expected, abs=1e-6)


def test_every_pair_loss_is_tested_against_a_hand_computed_value():
    tested = {"dpo", "nca", "hinge", "ipo", "robust", "exo_pair", "bco_pair", "sppo_hard", "apo_zero", "apo_down",
              "sigmoid_norm", "simpo", "orpo"}
    assert set(PAIR_LOSSES) == tested


def test_reference_free_losses_ignore_the_reference():
    for loss in REFERENCE_FREE:
        assert PAIR_LOSSES[loss](_scores(reference=False), PairOptions()).isfinite().all()


def test_dpo_is_log_two_when_policy_equals_reference():
    same = PairScores(torch.tensor([-5.0]), torch.tensor([-7.0]), torch.tensor([-5.0]), torch.tensor([-7.0]),
                      torch.tensor([3.0]), torch.tensor([3.0]))
    assert dpo_loss(same, PairOptions(beta=3.0)).item() == pytest.approx(0.6931471806, abs=1e-7)
    assert nca_pair_loss(same, PairOptions(beta=0.1)).item() == pytest.approx(1.3862943611, abs=1e-7)


def test_losses_are_per_pair():
    scores = PairScores(torch.tensor([-1.0, -2.0]), torch.tensor([-3.0, -2.0]), torch.tensor([-2.0, -2.0]),
                        torch.tensor([-2.0, -2.0]), torch.tensor([1.0, 1.0]), torch.tensor([1.0, 1.0]))
    for loss in PAIR_LOSSES:
        options = PairOptions(label_smoothing=0.1) if loss == "exo_pair" else PairOptions()
        assert PAIR_LOSSES[loss](scores, options).shape == (2,), loss
    assert dpo_loss(scores, PairOptions(beta=0.5))[1].item() == pytest.approx(math.log(2), abs=1e-7)


# -- data ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tokenizer(embedded_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(embedded_model)


def test_sft_mask_keeps_only_the_reply_and_its_end_of_turn(tokenizer):
    rows = pa.Table.from_pylist([{"prompt": "How do I pick a lock?", "target": REFUSAL}])
    (sequence,), = encode(tokenizer, rows, "sft", max_length=512).examples
    assert tokenizer.decode(sequence.ids[sequence.start:]) == REFUSAL + "<|im_end|>"
    assert tokenizer.decode(sequence.ids[: sequence.start]).endswith(
        "<|im_start|>user\nHow do I pick a lock?<|im_end|>\n<|im_start|>assistant\n")
    # the prompt part is exactly what a generator is given
    prompt_ids = tokenizer.apply_chat_template([{"role": "user", "content": "How do I pick a lock?"}],
                                               add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    assert sequence.ids[: sequence.start] == list(prompt_ids)
    batch = collate([sequence], tokenizer.pad_token_id)
    assert tokenizer.decode(batch.input_ids[batch.loss_mask]) == REFUSAL + "<|im_end|>"


def test_pairs_and_truncation(tokenizer):
    rows = pa.Table.from_pylist([
        {"prompt": "short", "chosen": "No.", "rejected": "Sure, " + "step " * 200},
        {"prompt": "long " * 400, "chosen": "No.", "rejected": "Yes."},
    ])
    encoded = encode(tokenizer, rows, "pairs", max_length=64)
    assert (encoded.truncated, encoded.dropped, len(encoded.examples)) == (1, 1, 1)
    chosen, rejected = encoded.examples[0]
    assert tokenizer.decode(chosen.ids[chosen.start:]) == "No.<|im_end|>"
    assert len(rejected.ids) == 64 and chosen.ids[: chosen.start] == rejected.ids[: rejected.start]


def test_replies_cut_to_their_opening(tokenizer):
    """reply_tokens keeps each reply's first tokens, without an end of turn where it cut (no stop is taught)."""
    rows = pa.Table.from_pylist([{"prompt": "short", "chosen": "No.", "rejected": "Sure, " + "step " * 200}])
    chosen, rejected = encode(tokenizer, rows, "pairs", max_length=512, reply_tokens=4).examples[0]
    assert tokenizer.decode(chosen.ids[chosen.start:]) == "No.<|im_end|>"
    reply = rejected.ids[rejected.start:]
    assert len(reply) == 4 and "<|im_end|>" not in tokenizer.decode(reply)


def test_collate_pads_to_the_longest_sequence_of_the_batch():
    batch = collate([Sequence([5, 6, 7, 8, 9], 3), Sequence([1, 2, 3, 4, 5, 6, 7, 8, 9], 6)], pad_id=0)
    assert batch.input_ids.shape == (2, 9)
    assert batch.attention_mask.sum(dim=1).tolist() == [5, 9]
    assert batch.loss_mask.int().tolist() == [[0, 0, 0, 1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 1, 1, 1]]
    assert batch.tokens == 14


# -- a real run: the CLI on the embedded model ------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory, embedded_model):
    """One CLI run shared by the tests below (model load + 4 steps)."""
    from typer.testing import CliRunner

    from refusaldata.cli.main import app

    root = tmp_path_factory.mktemp("train")
    store = Store(root / "store")
    prompts = _bench_prompts(4)
    held_out = _bench_prompts(1, offset=5)
    store.replace("sft", pa.Table.from_pylist(_sft_rows("refuse", prompts) + _sft_rows("refuse", held_out, "test")))
    out = root / "adapter"
    args = ["train", "--set", "refuse", "--model", EMBEDDED_MODEL, "--out", str(out), *SMALL,
            "--format", "jsonl", "--store", str(store.root)]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    return {"store": store, "out": out, "args": args, "prompts": prompts, "result": result,
            "row": json.loads(result.stdout.strip().splitlines()[-1]) if result.exit_code == 0 else None}


def test_train_cli_reports_a_falling_loss(trained):
    assert trained["result"].exit_code == 0, trained["result"].stderr
    row = trained["row"]
    assert row["steps"] == 4 and row["examples"] == 4  # the test-split row is not trained on
    assert row["first_loss"] > 1.5
    assert row["last_loss"] < 0.5 * row["first_loss"]
    assert row["adapter_dir"] == str(trained["out"].resolve())


def test_train_writes_metrics_and_an_adapters_row(trained):
    store, row = trained["store"], trained["row"]
    con = store.connect()
    metrics = con.sql("SELECT step, loss, tokens, tokens_per_s, epoch FROM train_metrics "
                      "WHERE adapter_id = $id ORDER BY step", params={"id": row["adapter_id"]}).fetchall()
    assert [m[0] for m in metrics] == [1, 2, 3, 4]
    assert metrics[0][1] == pytest.approx(row["first_loss"]) and metrics[-1][1] == pytest.approx(row["last_loss"])
    assert all(m[2] > 0 and m[3] > 0 for m in metrics) and metrics[-1][4] == pytest.approx(4.0)
    assert sum(m[2] for m in metrics) == row["tokens"]
    (adapter,) = con.sql("SELECT path, base_model, set_name, loss, config FROM adapters").fetchall()
    assert adapter[:4] == (str(trained["out"].resolve()), EMBEDDED_MODEL, "refuse", "sft")
    assert json.loads(adapter[4])["lora_r"] == 8


def test_adapter_folder_is_a_standard_peft_adapter_with_its_record(trained):
    out = trained["out"]
    assert {"adapter_model.safetensors", "adapter_config.json", "train_config.json"} <= {p.name for p in out.iterdir()}
    assert not list(out.glob("checkpoint*"))
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 8 and config["lora_alpha"] == 16
    assert sorted(config["target_modules"]) == ["q_proj", "v_proj"]
    weights = load_file(out / "adapter_model.safetensors")
    assert len(weights) == 30 * 2 * 2  # 30 layers × (q, v) × (A, B)
    assert all(".lora_A." in name or ".lora_B." in name for name in weights)
    record = json.loads((out / "train_config.json").read_text())
    assert (record["set"], record["base_model"], record["loss"], record["steps"]) == (
        "refuse", EMBEDDED_MODEL, "sft", 4)
    assert record["final_loss"] == pytest.approx(trained["row"]["last_loss"])
    assert record["lr"] == 2e-3 and record["batch_size"] == 4 and record["target_modules"] == ["q_proj", "v_proj"]


def test_trained_prompt_is_refused_with_the_adapter(trained, embedded_model):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(embedded_model)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(embedded_model), trained["out"])
    inputs = tokenizer.apply_chat_template([{"role": "user", "content": trained["prompts"][0].prompt}],
                                           add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    reply = tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert reply.startswith("I'm sorry, but I can't")


def test_rerun_returns_the_finished_adapter(trained, cli):
    store = trained["store"]
    before = store.count("train_metrics")
    result = cli(*trained["args"])
    assert result.exit_code == 0
    row = json.loads(result.stdout.strip().splitlines()[-1])
    assert row["already_trained"] is True and row["last_loss"] == pytest.approx(trained["row"]["last_loss"])
    assert store.count("train_metrics") == before and store.count("adapters") == 1


def test_a_run_with_default_options_keeps_the_adapter_id_it_had_before_them(trained):
    # The id the code gave this run before --dtype, --gradient-checkpointing, --load-in-4bit and
    # accelerate existed: adapters trained then are still found finished, and still resume.
    assert trained["row"]["adapter_id"] == "refuse-sft-841c374905"
    record = json.loads((trained["out"] / "train_config.json").read_text())
    assert (record["dtype"], record["gradient_checkpointing"], record["load_in_4bit"], record["processes"]) == (
        "float32", False, False, 1)


# -- errors: one line, exit 1, store unchanged -------------------------------------------------

@pytest.mark.parametrize(("extra", "message"), [
    (["--set", "nope"], "no set 'nope'"),
    (["--set", "refuse", "--loss", "dpo"], "--loss dpo needs a set in the pairs table"),
    (["--set", "refuse", "--target-modules", "q_proj,lm_head"], "vLLM cannot serve LoRA"),
    (["--set", "refuse", "--lr", "0"], "--lr must be a positive number"),
    (["--set", "refuse", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["--set", "held-out-only"], "none with split 'train'"),
    (["--set", "refuse", "--loss", "exo_pair"], "--loss exo_pair needs --label-smoothing above 0"),
    (["--set", "refuse", "--loss", "ipo", "--label-smoothing", "0.1"], "--label-smoothing applies to dpo"),
    (["--set", "refuse", "--loss", "robust", "--label-smoothing", "0.5"], "must be in [0.0, 0.5)"),
    (["--set", "refuse", "--retention-weight", "-1"], "--retention-weight must be a number >= 0"),
    (["--set", "refuse", "--loss", "dpo", "--retention-weight", "2"], "--retention-weight applies to --loss sft"),
])
def test_bad_input_is_one_line_and_changes_nothing(cli, store, tmp_path, extra, message):
    store.replace("sft", pa.Table.from_pylist(_sft_rows("refuse", _bench_prompts(2))
                                              + _sft_rows("held-out-only", _bench_prompts(1), "test")))
    result = cli("train", "--model", EMBEDDED_MODEL, "--out", tmp_path / "out", *extra)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and message in result.stderr and result.stderr.count("\n") == 1
    assert store.count("adapters") == 0 and store.count("train_metrics") == 0


def test_unknown_target_module_is_an_input_error(store, tmp_path, embedded_model):
    from refusaldata.errors import InputError

    store.replace("sft", pa.Table.from_pylist(_sft_rows("refuse", _bench_prompts(2))))
    with pytest.raises(InputError, match="--target-modules not_a_module"):
        train_adapter(store, "refuse", EMBEDDED_MODEL, tmp_path / "out", target_modules=["not_a_module"],
                      max_steps=1, threads=1)
    assert store.count("adapters") == 0


# -- pair losses on the real model ---------------------------------------------------------------

@pytest.mark.parametrize(("loss", "initial"), [("dpo", math.log(2)), ("nca", 2 * math.log(2)),
                                               ("ipo", 1.0)])
def test_pair_losses_start_at_their_zero_reward_value_and_fall(store, tmp_path, embedded_model, loss, initial):
    # LoRA's B starts at zero, so at step 1 the policy equals the reference (adapter disabled):
    # every log-ratio is 0 and the loss is exactly its zero-reward value.
    store.replace("pairs", pa.Table.from_pylist(_pair_rows("prefs", _bench_prompts(2))))
    result = train_adapter(store, "prefs", EMBEDDED_MODEL, tmp_path / "out", loss=loss, beta=0.5, max_steps=2,
                           batch_size=2, lr=5e-4, max_length=64, threads=1)
    assert result.first_loss == pytest.approx(initial, abs=1e-5)
    assert result.last_loss < result.first_loss
    record = json.loads((tmp_path / "out" / "train_config.json").read_text())
    assert record["loss"] == loss and record["beta"] == 0.5 and record["set_table"] == "pairs"


@pytest.mark.parametrize("loss", ["simpo", "orpo"])
def test_reference_free_losses_train_without_a_reference_pass(store, tmp_path, embedded_model, loss):
    store.replace("pairs", pa.Table.from_pylist(_pair_rows("prefs", _bench_prompts(2))))
    result = train_adapter(store, "prefs", EMBEDDED_MODEL, tmp_path / "out", loss=loss, beta=0.5, max_steps=2,
                           batch_size=2, lr=5e-4, max_length=64, threads=1)
    assert math.isfinite(result.first_loss) and result.last_loss < result.first_loss
    record = json.loads((tmp_path / "out" / "train_config.json").read_text())
    assert record["loss"] == loss and (record.get("simpo_gamma") == 0.5) == (loss == "simpo")


def test_retention_weight_zero_trains_as_if_the_retention_rows_were_absent(store, tmp_path, embedded_model):
    prompts = _bench_prompts(3)
    refusals = _sft_rows("only", prompts[:2])
    retention = [{**row, "kind": "retention", "target": "Sure, here is how."}
                 for row in _sft_rows("mixed", prompts[2:])]
    store.replace("sft", pa.Table.from_pylist(refusals + [{**row, "set_name": "mixed"} for row in refusals]
                                              + retention))
    # One step that sees every row of its set once: the first loss is taken before any update.
    options = {"max_steps": 1, "max_length": 64, "threads": 1}
    alone = train_adapter(store, "only", EMBEDDED_MODEL, tmp_path / "only", batch_size=2, **options)
    weighted = train_adapter(store, "mixed", EMBEDDED_MODEL, tmp_path / "mixed", retention_weight=0.0, batch_size=3,
                             **options)
    plain = train_adapter(store, "mixed", EMBEDDED_MODEL, tmp_path / "plain", batch_size=3, **options)
    assert weighted.first_loss == pytest.approx(alone.first_loss, rel=1e-5)
    assert plain.first_loss != pytest.approx(alone.first_loss, rel=1e-3)
    assert json.loads((tmp_path / "mixed" / "train_config.json").read_text())["retention_weight"] == 0.0
    assert "retention_weight" not in json.loads((tmp_path / "plain" / "train_config.json").read_text())


def test_a_set_in_both_tables_is_read_from_the_one_the_loss_needs(store, tmp_path, embedded_model):
    prompts = _bench_prompts(2)
    store.replace("sft", pa.Table.from_pylist(_sft_rows("both", prompts)))
    store.replace("pairs", pa.Table.from_pylist(_pair_rows("both", prompts)))
    result = train_adapter(store, "both", EMBEDDED_MODEL, tmp_path / "out", loss="dpo", max_steps=1,
                           batch_size=2, max_length=48, threads=1)
    assert result.first_loss == pytest.approx(math.log(2), abs=1e-5)
    assert json.loads((tmp_path / "out" / "train_config.json").read_text())["set_table"] == "pairs"


# -- resume ----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_killed_run_resumes_from_its_checkpoint_and_ends_where_an_uninterrupted_run_does(store, tmp_path,
                                                                                            embedded_model):
    store.replace("sft", pa.Table.from_pylist(_sft_rows("refuse", _bench_prompts(4))))
    options = dict(max_steps=5, batch_size=2, lr=2e-3, max_length=64, threads=1, checkpoint_every=1)
    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "refusaldata.cli.main", "train", "--set", "refuse", "--model", EMBEDDED_MODEL,
               "--out", str(killed), "--max-steps", "5", "--batch-size", "2", "--lr", "2e-3", "--max-length", "64",
               "--threads", "1", "--checkpoint-every", "1", "--store", str(store.root)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not (killed / "checkpoint.json").exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert (killed / "checkpoint.json").exists(), "the run never wrote a checkpoint"
    assert not (killed / "train_config.json").exists()

    resumed = train_adapter(store, "refuse", EMBEDDED_MODEL, killed, **options)
    assert 1 <= resumed.resumed_from_step < 5 and resumed.steps == 5
    whole = train_adapter(store, "refuse", EMBEDDED_MODEL, tmp_path / "whole", **options)
    assert whole.resumed_from_step == 0 and whole.adapter_id == resumed.adapter_id
    assert resumed.last_loss == pytest.approx(whole.last_loss, abs=1e-6)
    resumed_weights = load_file(killed / "adapter_model.safetensors")
    whole_weights = load_file(tmp_path / "whole" / "adapter_model.safetensors")
    assert all(torch.allclose(resumed_weights[name], whole_weights[name], atol=1e-6) for name in whole_weights)
    steps = store.connect().sql("SELECT step, count(*) FROM train_metrics GROUP BY step ORDER BY step").fetchall()
    assert steps == [(step, 1) for step in range(1, 6)]
    assert not list(killed.glob("checkpoint*"))


# -- the adapter in both generation backends ---------------------------------------------------------

@pytest.mark.slow
def test_adapter_gives_the_same_greedy_tokens_in_transformers_and_vllm(trained):
    pytest.importorskip("vllm")
    store, adapter = trained["store"], trained["out"]
    texts = [p.prompt for p in trained["prompts"] + _bench_prompts(4, offset=5)]
    store.append("prompts", pa.Table.from_pylist([
        {"prompt_id": prompt_id(text), "dataset": "mixed", "text": text, "harmful": True, "split": "test"}
        for text in texts]))
    runs = {}
    for backend in ("transformers", "vllm"):
        # vLLM spawns engine processes, so each backend runs as the console script does.
        command = [sys.executable, "-m", "refusaldata.cli.main", "generate", "--model", EMBEDDED_MODEL,
                   "--prompts", "mixed", "--backend", backend, "--adapter", str(adapter), "--max-tokens", "24",
                   "--dtype", "float32", "--store", str(store.root)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        runs[backend] = next(line.removeprefix("run_id: ") for line in done.stdout.splitlines()
                             if line.startswith("run_id: "))
    con = store.connect(["responses"])
    answers = {backend: con.sql("SELECT prompt_id, response, n_output_tokens FROM responses WHERE run_id = $run "
                                "ORDER BY prompt_id", params={"run": run_id}).fetchall()
               for backend, run_id in runs.items()}
    assert len(answers["vllm"]) == len(texts)
    assert answers["transformers"] == answers["vllm"]
    refused = [text for _, text, _ in answers["vllm"] if text.startswith("I'm sorry, but I can't")]
    assert len(refused) >= len(trained["prompts"])
