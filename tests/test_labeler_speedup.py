"""The vectorised default labeler and unsafe judge decide as before: `refusaldata label` on a
fixture of texts written for this test gives the verdicts frozen from commit 679acd2, before
their scoring was vectorised (tests/fixtures/verdicts/make_frozen.py wrote them), and the
compiled term reader (ngram_model.Terms) builds exactly the bag the per-response Python
reader (response_terms) builds, hostile texts included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from refusaldata.labelers import ngram_model
from refusaldata.labelers.ngram import refusal_model
from refusaldata.labelers.unsafe import unsafe_model
from refusaldata.runs import record_run

FROZEN = Path(__file__).parent / "fixtures" / "verdicts" / "frozen.parquet"


def frozen_store(store) -> pa.Table:
    frozen = pq.read_table(FROZEN)
    asked = [(pid, text) for pid, text in zip(frozen.column("prompt_id").to_pylist(),
                                                frozen.column("prompt").to_pylist()) if text is not None]
    store.append("prompts", pa.table({"prompt_id": [p for p, _ in asked], "dataset": ["frozen"] * len(asked),
                                      "text": [t for _, t in asked], "harmful": [True] * len(asked),
                                      "split": ["test"] * len(asked)}))
    record_run(store, "frozen", "import", {"source": "test"}, name="frozen")
    store.append("responses", pa.table({"run_id": ["frozen"] * frozen.num_rows,
                                        "prompt_id": frozen.column("prompt_id"),
                                        "sample_index": frozen.column("sample_index"),
                                        "response": frozen.column("response"),
                                        "finish_reason": ["stop"] * frozen.num_rows}))
    return frozen


def stored(store, labeler: str) -> dict[int, tuple]:
    con = store.connect(["labels"])
    try:
        return {row[0]: row[1:] for row in con.sql(
            "SELECT sample_index, verdict, score, marker, unsafe FROM labels WHERE labeler = $labeler",
            params={"labeler": labeler}).fetchall()}
    finally:
        con.close()


@pytest.mark.slow
def test_label_gives_the_frozen_verdicts(store, cli):
    frozen = frozen_store(store).to_pylist()
    for labeler in ("ngram", "unsafe"):
        result = cli("label", "--labeler", labeler)
        assert result.exit_code == 0, result.stderr
    ngram, unsafe = stored(store, "ngram"), stored(store, "unsafe")
    assert len(ngram) == len(unsafe) == len(frozen)
    for row in frozen:
        verdict, score, marker, _ = ngram[row["sample_index"]]
        assert (verdict, marker) == (row["ngram_verdict"], row["ngram_marker"]), row["response"][:60]
        assert score == pytest.approx(row["ngram_score"], abs=1e-5), row["response"][:60]
        _, score, _, judged = unsafe[row["sample_index"]]
        assert judged == row["unsafe"], row["response"][:60]
        assert score == pytest.approx(row["unsafe_score"], abs=1e-5), row["response"][:60]
    # Gated rows (no prompt word in the answer) went through the MiniLM relevance.
    assert any(row["response"].startswith("Unrelated") for row in frozen)


HOSTILE = [
    "", " ", "\n\n\n", "x" * 4001, ("word " * 900) + "tail end of a long answer", "a\x1cb\x1dc\x1e d\x1f",
    "\u2003indented\n\u3000- **bold** item\n\x85next", "İSTANBUL ΟΔΟΣ ΑΣ", "don't 'quote' ''' '",
    "é\nÉcole\n½ half\n² square\n١٢٣ digits\n中文", "\r\n\r\n# heading\r\n1) one", "🙂🙂 emoji\n🙂 start",
    "’curly’ ‘quotes’ I’m sorry", "\ud7ff\ue000\U0010ffff", "- - - -\n* * *\n#\n#1", "a" * 12 + "b\nab c",
]


@pytest.mark.parametrize("model", [refusal_model, unsafe_model], ids=["refusal", "unsafe"])
def test_terms_build_the_bag_response_terms_builds(model):
    model = model()
    texts = HOSTILE + pq.read_table(FROZEN).column("response").to_pylist()
    rng = np.random.default_rng(0)
    alphabet = list("abc xyz'’-*#1.\n\t\x1c\u2003É中🙂") + ["sorry", " I ", "can't", "here is"]
    texts += ["".join(rng.choice(alphabet, size=rng.integers(0, 80))) for _ in range(200)]
    fast = ngram_model.Terms.read(texts, model.settings).bag(model.vocabulary, model.settings)
    slow = ngram_model.Bag.of([ngram_model.response_terms(text, model.settings) for text in texts], model.index)
    assert np.array_equal(fast.indptr, slow.indptr)
    for row in range(len(texts)):
        got = dict(zip(fast.indices[fast.indptr[row]:fast.indptr[row + 1]].tolist(),
                       fast.values[fast.indptr[row]:fast.indptr[row + 1]].tolist()))
        want = dict(zip(slow.indices[slow.indptr[row]:slow.indptr[row + 1]].tolist(),
                        slow.values[slow.indptr[row]:slow.indptr[row + 1]].tolist()))
        assert got.keys() == want.keys(), repr(texts[row][:40])
        assert np.allclose([got[k] for k in want], list(want.values()), atol=1e-6), repr(texts[row][:40])


def test_whitespace_is_what_python_strips():
    assert "".join(chr(c) for c in range(0x110000) if chr(c).isspace()) == ngram_model.WHITESPACE


@pytest.mark.slow
def test_empty_and_megabyte_responses_get_labelled_rows(store, cli):
    texts = ["", "   ", "I can't help with that. " * 45_000, "line\n" * 200_000]
    record_run(store, "big", "import", {"source": "test"}, name="big")
    store.append("responses", pa.table({"run_id": ["big"] * len(texts), "prompt_id": ["p"] * len(texts),
                                        "sample_index": pa.array(range(len(texts)), pa.int32()),
                                        "response": texts, "finish_reason": ["stop"] * len(texts)}))
    for labeler in ("ngram", "unsafe"):
        result = cli("label", "--labeler", labeler)
        assert result.exit_code == 0, result.stderr
    ngram, unsafe = stored(store, "ngram"), stored(store, "unsafe")
    assert [ngram[i][0] for i in range(4)][:3] == ["refusal", "refusal", "refusal"]
    assert len(unsafe) == 4 and all(unsafe[i][3] is not None for i in range(4))


@pytest.mark.slow
def test_semantic_relevance_is_the_same_whatever_the_process_kept(monkeypatch):
    from refusaldata.labelers import ngram

    prompts = ["Tell me a joke.", "Plan a trip to Rome.", "Tell me a joke."]
    responses = ["Lisbon is mild in spring.", "Bring comfortable shoes.", "Bananas are berries."]
    gated = np.ones(3, dtype=bool)
    monkeypatch.setattr(ngram, "_embedded", {})
    fresh = ngram.semantic_relevance(prompts, responses, gated)
    monkeypatch.setattr(ngram, "EMBEDDED_TEXTS", 3)  # full: the kept texts are dropped mid-way
    again = ngram.semantic_relevance(prompts[1:], responses[1:], gated[1:])
    assert np.allclose(again, fresh[1:], atol=1e-5)
