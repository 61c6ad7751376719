-- Per run, prompt and refusal opening: how many of the run's refusals of that harmful
-- prompt open with those words. `refusaldata compare` resamples prompts and recomputes
-- uniformity (1 - H/log n) and the top-1 share from these counts.
-- Parameters: $runs (list of run ids), $labeler (the refusal labeler), $split (the
-- prompt split to keep, or 'all'), $k (opening length in words: labels.opening, the
-- labeler's normalized opening, cut to its first $k words by rd_opening from
-- normalize.sql, as `mine` cuts it).
-- A refusal with no opening (an empty response) counts under the empty opening.
WITH prompt_facts AS (
    SELECT prompt_id, bool_or(harmful) AS harmful
    FROM prompts
    WHERE $split = 'all' OR split = $split
    GROUP BY prompt_id
)
SELECT l.run_id,
       l.prompt_id,
       rd_opening(coalesce(l.opening, ''), $k) AS opening,
       count(*) AS refusals
FROM labels_of($labeler) l
JOIN prompt_facts p USING (prompt_id)
JOIN responses r
  ON r.run_id = l.run_id AND r.prompt_id = l.prompt_id AND r.sample_index = l.sample_index
WHERE list_contains($runs, l.run_id)
  AND l.refusal
  AND p.harmful
  AND r.finish_reason IS DISTINCT FROM 'skipped'
GROUP BY ALL
ORDER BY l.run_id, opening, l.prompt_id
