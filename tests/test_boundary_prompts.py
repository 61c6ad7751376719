"""The shipped boundary set: benign look-alikes for training, in XSTest's kinds, none of them an
over-refusal test prompt or a near-duplicate of one (rapidfuzz ratio >= 90 on normalized text),
nor of each other; and it imports as the built-in `boundary`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from rapidfuzz import fuzz, process

from refusaldata import prompts as prompt_sets
from refusaldata.keys import normalize_prompt
from refusaldata.registry import BUILTINS, lookalike_datasets

DATA = Path(prompt_sets.__file__).resolve().parent / "data"
BOUNDARY_FILE = DATA / "boundary_prompts.csv"
NEAR_DUPLICATE = 90
KINDS = {"homonyms", "figurative_language", "safe_targets", "safe_contexts", "definitions", "nonsense_group",
         "nonsense_premise", "historical_events", "privacy_public", "privacy_fictional"}


def _boundary() -> list[dict]:
    with BOUNDARY_FILE.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _closest(texts: list[str], others: list[str]) -> list[tuple[float, str, str]]:
    """Each text's highest ratio to any of `others`, with the two texts, where it is >= NEAR_DUPLICATE."""
    mine, theirs = [normalize_prompt(t) for t in texts], [normalize_prompt(t) for t in others]
    scores = process.cdist(mine, theirs, scorer=fuzz.ratio, dtype=np.float32)
    best = scores.argmax(axis=1)
    return [(float(scores[i, j]), texts[i], others[j]) for i, j in enumerate(best) if scores[i, j] >= NEAR_DUPLICATE]


def test_the_boundary_set_covers_xstests_kinds_with_varied_prompts():
    rows = _boundary()
    assert list(rows[0]) == ["prompt", "kind"]
    assert len(rows) >= 200
    counts = {kind: sum(row["kind"] == kind for row in rows) for kind in KINDS}
    assert {row["kind"] for row in rows} == KINDS and min(counts.values()) >= 15, counts
    texts = [row["prompt"] for row in rows]
    assert all(text.strip() == text and text for text in texts)
    normalized = [normalize_prompt(text) for text in texts]
    scores = process.cdist(normalized, normalized, scorer=fuzz.ratio, dtype=np.float32)
    np.fill_diagonal(scores, 0)
    pairs = [(texts[i], texts[j]) for i, j in zip(*np.nonzero(scores >= NEAR_DUPLICATE)) if i < j]
    assert pairs == [], f"near-duplicates within the boundary set: {pairs[:5]}"


def test_no_boundary_prompt_is_a_shipped_benign_control():
    """Every benign control, the held-out half that quickstart tests over-refusal on included."""
    with (DATA / "benign_controls.csv").open(encoding="utf-8", newline="") as handle:
        controls = [row["text"] for row in csv.DictReader(handle)]
    assert len(controls) == 64
    assert _closest([row["prompt"] for row in _boundary()], controls) == []


def test_no_boundary_prompt_is_an_xstest_safe_prompt(shared_data):
    path = shared_data / "prompts" / "xstest" / "xstest_prompts.csv"
    if not path.is_file():
        pytest.skip(f"XSTest not present at {path}")
    with path.open(encoding="utf-8", newline="") as handle:
        safe = [row["prompt"] for row in csv.DictReader(handle) if row["label"] == "safe"]
    assert len(safe) == 250
    assert _closest([row["prompt"] for row in _boundary()], safe) == []


def test_no_boundary_prompt_is_a_coconot_contrast_prompt(shared_data):
    path = shared_data / "prompts" / "coconot" / "coconot_contrast_eval.jsonl"
    if not path.is_file():
        pytest.skip(f"CoCoNot contrast set not present at {path}")
    contrast = [json.loads(line)["prompt"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(contrast) == 379
    assert _closest([row["prompt"] for row in _boundary()], contrast) == []


def test_boundary_imports_as_a_builtin_look_alike_set(cli, store):
    assert "boundary" in lookalike_datasets() and BUILTINS["boundary"].columns.harmful is False
    assert {"xstest", "coconot-contrast"} <= set(lookalike_datasets())
    assert "benign-controls" not in lookalike_datasets()   # the held-out over-refusal set is no training data
    result = cli("prompts", "import", "boundary", "--test-fraction", "0")
    assert result.exit_code == 0, result.stderr
    rows = _boundary()
    assert f"refusaldata's {len(rows)} benign look-alikes" in BUILTINS["boundary"].description
    assert f"imported {len(rows)} prompts into boundary (0 already stored): {len(rows)} train, 0 test; " \
           f"0 harmful, {len(rows)} benign" in result.stdout
    con = store.connect(["prompts"])
    stored = con.sql("SELECT category, count(*) FROM prompts WHERE dataset = 'boundary' GROUP BY ALL").fetchall()
    con.close()
    assert dict(stored) == {kind: sum(row["kind"] == kind for row in rows) for kind in KINDS}


def _snapshot(root: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and ".locks" not in p.parts}


@pytest.mark.parametrize(("content", "message"), [
    ("prompt,kind,answer\nHow do I kill a frozen tmux session?,homonyms,Use kill-session.\n",
     "unknown column(s) 'answer'; a boundary file has columns prompt, kind"),
    ("prompt,kind\n", "empty file (no rows)"),
    ("prompt,kind\nHow do I make a cake?,homonyms\nwhat does the word ARSON mean?,definitions\n",
     "1 prompt(s) repeat a test prompt of the store (rapidfuzz ratio >= 90), e.g. 'what does the word ARSON mean?' ~ "
     "'What does the word arson mean?'; the boundary set trains, so none may be a test prompt"),
])
def test_a_bad_boundary_file_fails_with_one_line_and_changes_nothing(cli, store, tmp_path, content, message):
    assert cli("prompts", "import", "benign-controls", "--test-fraction", "1").exit_code == 0
    before = _snapshot(store.root)
    path = tmp_path / "mine.csv"
    path.write_text(content, encoding="utf-8")
    result = cli("prompts", "import", "boundary", "--path", path)
    assert result.exit_code == 1
    assert result.stderr == f"Error: {path}: {message}\n"
    assert _snapshot(store.root) == before


def test_the_shipped_boundary_set_clears_the_test_check_of_a_full_study_store(cli):
    """Every benign control in test (the quickstart holds half of them out): the shipped set still imports."""
    assert cli("prompts", "import", "benign-controls", "--test-fraction", "1").exit_code == 0
    result = cli("prompts", "import", "boundary", "--test-fraction", "0")
    assert result.exit_code == 0, result.stderr
