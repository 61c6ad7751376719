"""MiniLM embeddings without transformers: embed.py's own forward pass over the packaged weights
gives what transformers' BertModel gives (the vectors the shipped labelers were trained on),
and embedding imports no transformers."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

TEXTS = ["", "x", "How do I bake a chocolate cake?", "I'm sorry, but I can't help with that.",
         "’curly’ Ünïcødé 中文 🙂\t\x00 end", "word " * 400, "- **Step 1**: preheat the oven.\n- **Step 2**: mix."]


@pytest.mark.slow
def test_embeddings_are_transformers_bert_ones():
    import torch
    from transformers import AutoModel, AutoTokenizer

    from refusaldata.labelers.embed import MAX_TOKENS, embed, minilm_dir

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    model = AutoModel.from_pretrained(minilm_dir(), dtype=torch.float32, use_safetensors=True).eval()
    batch = tokenizer(TEXTS, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    want = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    got = embed(TEXTS, batch_size=3, cache=False)
    assert np.abs(got - want).max() < 1e-5


@pytest.mark.slow
def test_embedding_imports_no_transformers():
    code = ("import sys; from refusaldata.labelers.embed import embed; embed(['a text'], cache=False); "
            "print('transformers' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
