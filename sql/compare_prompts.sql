-- Per run and prompt: labelled responses, refusals and unsafe verdicts. These are the
-- rows `refusaldata compare` resamples: the prompt is the bootstrap's unit, so the
-- samples of one prompt stay together.
-- Parameters: $runs (list of run ids), $labeler (the refusal labeler), $split (the
-- prompt split to keep, or 'all'), $unsafe_labeler (whose `unsafe` verdicts count; NULL
-- for none).
-- A prompt is harmful when any of its rows says so (the same text can sit in two
-- datasets). Responses without a refusal verdict, and those generation skipped
-- (finish_reason 'skipped'), are left out.
WITH prompt_facts AS (
    SELECT prompt_id, bool_or(harmful) AS harmful
    FROM prompts
    WHERE $split = 'all' OR split = $split
    GROUP BY prompt_id
)
SELECT l.run_id,
       l.prompt_id,
       p.harmful,
       count(*) AS responses,
       count(*) FILTER (WHERE l.refusal) AS refusals,
       count(u.unsafe) AS judged,
       count(*) FILTER (WHERE u.unsafe) AS unsafe
FROM labels_of($labeler) l
JOIN prompt_facts p USING (prompt_id)
JOIN responses r
  ON r.run_id = l.run_id AND r.prompt_id = l.prompt_id AND r.sample_index = l.sample_index
LEFT JOIN labels u
  ON u.labeler = $unsafe_labeler AND u.run_id = l.run_id AND u.prompt_id = l.prompt_id
 AND u.sample_index = l.sample_index
WHERE list_contains($runs, l.run_id)
  AND l.refusal IS NOT NULL
  AND r.finish_reason IS DISTINCT FROM 'skipped'
GROUP BY l.run_id, l.prompt_id, p.harmful
ORDER BY l.run_id, p.harmful, l.prompt_id
