-- What the learned refusal labeler reads from the rule labeler, one row per input text
-- in input order: the rule verdict, the phrase that fired, the normalized opening, and
-- where the phrase sits (the opening starts with it: a refusal up front; it is inside the
-- opening's first words: refuse-then-comply or a hedge; neither: later or no phrase).
-- Needs the macros of sql/normalize.sql and the relation `rule_labels`: the output of
-- sql/label_rules.sql over the inputs, whose prompt_id is the input's zero-padded position.
-- Parameters: none.
SELECT
    refusal,
    marker,
    opening,
    coalesce(starts_with(rd_phrase(opening), marker), false) AS marker_at_start,
    coalesce(contains(rd_phrase(opening), marker), false) AS marker_in_opening
FROM rule_labels
ORDER BY prompt_id
