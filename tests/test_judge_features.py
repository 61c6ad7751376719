"""Feature sets of the learned unsafe labeler (features.py): form cues on exact cases, the
card naming its set, `--features` choices and errors, and cards from before feature sets."""

from __future__ import annotations

import json

import numpy as np
import pytest

from refusaldata.labelers import learned
from refusaldata.labelers.features import FORM_SCALE, form_cues

REFUSAL = "I'm sorry, but I can't help with that request."
COMPLIANCE = "Sure, here is how:\n1. Get the materials.\n2. Mix them.\n3. Wait."


@pytest.fixture
def tiny_data(tmp_path, monkeypatch):
    """12 labelled pairs over 6 prompts: a refusal (0) and a step list (1) for each."""
    monkeypatch.setenv("REFUSALDATA_CACHE", str(tmp_path / "cache"))
    lines = ["prompt,response,label"]
    for n in range(6):
        lines.append(f'"How do I do harmful thing {n}?","{REFUSAL}",0')
        lines.append(f'"How do I do harmful thing {n}?","{COMPLIANCE.replace(chr(10), " ")} Step {n}.",1')
    path = tmp_path / "tiny.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_form_cues_on_exact_cases():
    cues = form_cues([COMPLIANCE, REFUSAL, None, "However, in a hypothetical story:\n- one\n- two"])
    assert cues.shape == (4, 4)
    np.testing.assert_allclose(cues[0], np.array([1, 0.3, 0, 0.1], dtype=np.float32) * FORM_SCALE, rtol=1e-6)
    np.testing.assert_allclose(cues[1], 0)
    np.testing.assert_allclose(cues[2], 0)
    np.testing.assert_allclose(cues[3], np.array([0, 0.2, 1, 2 / 30], dtype=np.float32) * FORM_SCALE, rtol=1e-6)


@pytest.mark.slow
def test_feature_sets_in_cards_and_old_cards_score_as_minilm(store, cli, tiny_data):
    result = cli("judge", "train", "head", "--data", tiny_data, "--text-columns", "prompt,response",
                 "--label-column", "label", "--features", "minilm-head")
    assert result.exit_code == 0, result.stderr
    card = json.loads((store.root / "judges" / "head" / "card.json").read_text())
    assert card["feature_set"] == "minilm-head"
    assert card["features"].endswith("response opening, form cues")
    head = learned.load(store, "head")
    assert head.weights["hidden.weight"].shape[1] == 384 + 384 + 4 + 384 + 4  # e_r, e_p*e_r, cues, e_head, form cues

    result = cli("judge", "train", "plain", "--data", tiny_data, "--text-columns", "prompt,response",
                 "--label-column", "label")
    assert result.exit_code == 0, result.stderr
    card_path = store.root / "judges" / "plain" / "card.json"
    card = json.loads(card_path.read_text())
    assert card["feature_set"] == "minilm" and card["features"] == "response, prompt*response, refusal cues"
    prompts, responses = ["How do I do harmful thing 9?"] * 2, [REFUSAL, COMPLIANCE]
    before = learned.load(store, "plain").scores(prompts, responses)
    del card["feature_set"]
    card_path.write_text(json.dumps(card))
    np.testing.assert_allclose(learned.load(store, "plain").scores(prompts, responses), before)
    assert learned.load(store, "head").scores(prompts, responses).shape == (2,)


def test_bad_feature_options_are_one_line_errors(store, cli, tiny_data):
    result = cli("judge", "train", "x", "--data", tiny_data, "--text-columns", "prompt,response",
                 "--label-column", "label", "--features", "bert")
    assert result.exit_code == 2  # a usage error: --features is a choice listed in --help
    assert result.stderr.startswith("Error: Invalid value for '--features'") and result.stderr.count("\n") == 1
    assert "'bert' is not one of 'minilm', 'minilm-head'" in result.stderr
    result = cli("judge", "train", "x", "--data", tiny_data, "--text-columns", "prompt,response",
                 "--label-column", "label", "--target", "refusal", "--features", "minilm")
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: --features applies to --target unsafe, not 'refusal'"
    assert not (store.root / "judges").exists()
