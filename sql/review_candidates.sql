-- The responses of the chosen runs whose refusal verdict is least certain, for a person
-- to review (`refusaldata review export`), in the review file's columns.
-- Order: responses on which the run's machine labelers disagree (some say refusal,
-- some not) first, then the score of $labeler nearest 0.5 (scores are calibrated
-- P(refusal), so 0.5 is the verdict's threshold; a missing score counts as 0.5), then
-- prompt_id and sample_index. Responses a person has reviewed (labeler 'human') are
-- left out, so a second export after an import shows the next ones.
-- Needs sql/best_labels.sql (labels_of). Parameters:
--   $run_ids  the runs (VARCHAR[])
--   $labeler  whose verdict and score are shown (and ordered by)
--   $budget   how many rows to return
WITH chosen AS (
    SELECT run_id, prompt_id, sample_index, verdict, score
    FROM labels_of($labeler)
    WHERE list_contains($run_ids, run_id)
),
opinions AS (
    SELECT run_id, prompt_id, sample_index, count(DISTINCT refusal) AS opinions
    FROM labels
    WHERE list_contains($run_ids, run_id) AND refusal IS NOT NULL AND labeler <> 'human'
    GROUP BY run_id, prompt_id, sample_index
),
reviewed AS (
    SELECT run_id, prompt_id, sample_index
    FROM labels
    WHERE list_contains($run_ids, run_id) AND labeler = 'human'
)
SELECT
    c.run_id,
    c.prompt_id,
    c.sample_index,
    p.text AS prompt,
    r.response,
    c.verdict,
    c.score,
    NULL::VARCHAR AS human_verdict
FROM chosen c
JOIN responses r USING (run_id, prompt_id, sample_index)
LEFT JOIN (SELECT prompt_id, any_value(text) AS text FROM prompts GROUP BY prompt_id) p USING (prompt_id)
LEFT JOIN opinions o USING (run_id, prompt_id, sample_index)
ANTI JOIN reviewed USING (run_id, prompt_id, sample_index)
ORDER BY coalesce(o.opinions, 1) > 1 DESC, abs(coalesce(c.score, 0.5) - 0.5), c.run_id, c.prompt_id, c.sample_index
LIMIT $budget
