"""The `hybrid` labeler: the rules where they are sure, the shipped cue model elsewhere. The
default until `ngram` replaced it; kept for corpora too large for the default's speed.

Every answered response of a run is read by the rule labeler (sql/label_rules.sql over
the texts) and scored by the shipped cue model (cue_model.py), which needs no
training step and no model download: it runs at rule speed. Stored per response:
verdict (compliance, refusal or partial), refusal (= verdict != compliance), score =
P(refusal), the rules' marker on refusals and the normalized opening on every row.
"""

from __future__ import annotations

from refusaldata.labelers.registry import run_inputs, write_verdicts
from refusaldata.labelers.registry import refuse_options
from refusaldata.labelers.rules import rule_facts
from refusaldata.labelers.cue_model import decide
from refusaldata.store import Store


def label_with_hybrid(store: Store, run_ids: list[str], labeler: str, **options) -> dict[str, int]:
    """Label each run with the hybrid labeler; rows written per run."""
    refuse_options(labeler, options)
    written = {}
    for run_id in run_ids:
        rows = run_inputs(store, run_id)
        responses = rows.column("response").to_pylist()
        facts = rule_facts(responses)
        verdicts = decide(responses, facts, prompts=rows.column("prompt").to_pylist())
        written[run_id] = write_verdicts(store, run_id, labeler, rows, refusal=verdicts.refusal.tolist(),
                                         score=verdicts.score.tolist(), verdicts=verdicts.verdict,
                                         markers=verdicts.marker, openings=facts.column("opening").to_pylist())
    return written
