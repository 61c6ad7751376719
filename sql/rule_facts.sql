-- The rule labeler's facts of in-memory texts, one row per input text in input order:
-- what the learned refusal labelers and the hybrid labeler read from the rules. The rule
-- verdict, its score and the phrase that fired, the normalized opening, where the phrase
-- sits (the opening starts with it: a refusal up front; it is inside the opening's first
-- words: refuse-then-comply or a hedge; neither: later or no phrase), and whether an
-- answer phrase occurs in the first $answer_chars characters (answer_cue: what makes a
-- refusal partial).
-- Needs the macros of sql/normalize.sql, the relation `rule_labels`: the output of
-- sql/label_rules.sql over the inputs, whose prompt_id is the input's zero-padded
-- position, and the inputs as `responses`.
-- Parameters:
--   $answer_chars    how many leading characters are searched for an answer phrase
--   $answer_pattern  regex of the lexicon's `answer` phrases
SELECT
    l.refusal,
    l.verdict,
    l.score,
    l.marker,
    l.opening,
    coalesce(starts_with(rd_phrase(l.opening), l.marker), false) AS marker_at_start,
    coalesce(contains(rd_phrase(l.opening), l.marker), false) AS marker_in_opening,
    regexp_matches(left(r.response, $answer_chars), $answer_pattern) AS answer_cue
FROM rule_labels l
JOIN responses r USING (prompt_id)
ORDER BY l.prompt_id
