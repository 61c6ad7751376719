-- A seeded sample of refusal openings (first k normalized words) per run, for the mean
-- pairwise similarity: the openings with the smallest hash(prompt_id, sample_index,
-- seed), so the same seed gives the same sample. min_by(..., n) keeps a heap of n per
-- run, so memory does not grow with the number of refusals.
-- Needs sql/normalize.sql and sql/mine_macros.sql. Parameters:
--   $labeler   labels.labeler to read
--   $run_ids   VARCHAR[] of runs (empty: every labelled run)
--   $k         words per opening
--   $sample    openings kept per run
--   $seed      sample seed (BIGINT)
SELECT run_id, unnest(min_by(rd_opening(opening, $k), hash(prompt_id, sample_index, $seed), $sample)) AS opening
FROM labels_of($labeler)
WHERE refusal AND run_selected(run_id, $run_ids::VARCHAR[])
GROUP BY run_id
ORDER BY run_id
