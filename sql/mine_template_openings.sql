-- Distinct refusal openings (first k normalized words) per run with their counts, most
-- frequent first: the input of the template clustering in refusaldata.mine.
-- Needs sql/normalize.sql and sql/mine_macros.sql. Parameters:
--   $labeler   labels.labeler to read
--   $run_ids   VARCHAR[] of runs (empty: every labelled run)
--   $k         words per opening
SELECT run_id, rd_opening(opening, $k) AS opening, count(*) AS refusals
FROM labels_of($labeler)
WHERE refusal AND run_selected(run_id, $run_ids::VARCHAR[])
GROUP BY ALL
ORDER BY run_id, refusals DESC, opening
