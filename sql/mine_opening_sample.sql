-- A seeded sample of the openings (first k normalized words) of each run's refusals to
-- harmful prompts (those mine_uniformity.sql measures), for the mean pairwise similarity: the openings with the smallest hash(prompt_id, sample_index,
-- seed), so the same seed gives the same sample. min_by(..., n) keeps a heap of n per
-- run, so memory does not grow with the number of refusals.
-- Needs sql/normalize.sql and sql/mine_macros.sql. Parameters:
--   $labeler   labels.labeler to read
--   $run_ids   VARCHAR[] of runs (empty: every labelled run)
--   $k         words per opening
--   $sample    openings kept per run
--   $seed      sample seed (BIGINT)
SELECT l.run_id,
       unnest(min_by(rd_opening(coalesce(l.opening, ''), $k), hash(l.prompt_id, l.sample_index, $seed), $sample))
           AS opening
FROM labels_of($labeler) l
WHERE l.refusal AND run_selected(l.run_id, $run_ids::VARCHAR[])
  AND l.prompt_id IN (SELECT prompt_id FROM prompts GROUP BY prompt_id HAVING bool_or(harmful))
  AND NOT EXISTS (SELECT 1 FROM responses r
                  WHERE r.run_id = l.run_id AND r.prompt_id = l.prompt_id AND r.sample_index = l.sample_index
                    AND r.finish_reason = 'skipped')
GROUP BY l.run_id
ORDER BY l.run_id
