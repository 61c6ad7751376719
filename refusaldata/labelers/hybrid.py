"""The `hybrid` labeler: the rules where they are sure, the shipped cue model elsewhere; for
corpora too large for the default labeler's (`ngram`) speed.

Every answered response of a run is read by the rule labeler (sql/label_rules.sql over
the texts) and scored by the shipped cue model (cue_model.py), which needs no
training step and no model download: ~6,600 responses/s on two cores, ten times the
default (docs/benchmarks.md). Stored per response:
verdict (compliance, refusal or partial), refusal (= verdict != compliance), score =
P(refusal), the rules' marker on refusals and the normalized opening on every row.
"""

from __future__ import annotations

from refusaldata.labelers.cue_model import decide
from refusaldata.labelers.rules import rule_facts


def score(prompts: list[str | None], responses: list[str], *, name: str = "hybrid", store=None) -> dict[str, list]:
    """The hybrid labeler's columns for each (prompt, response)."""
    facts = rule_facts(responses)
    verdicts = decide(responses, facts, prompts=prompts)
    return {"refusal": verdicts.refusal.tolist(), "score": verdicts.score.tolist(), "verdict": verdicts.verdict,
            "marker": verdicts.marker, "opening": facts.column("opening").to_pylist()}
