-- The most frequent refusal openings (first k normalized words) per run, with counts and
-- their share of the run's refusals.
-- Needs sql/normalize.sql and sql/mine_macros.sql. Parameters:
--   $labeler   labels.labeler to read
--   $run_ids   VARCHAR[] of runs (empty: every labelled run)
--   $k         words per opening (at most the words stored in labels.opening)
--   $top       openings kept per run
WITH counts AS (
    SELECT run_id, rd_opening(opening, $k) AS opening, count(*) AS refusals
    FROM labels_of($labeler)
    WHERE refusal AND run_selected(run_id, $run_ids::VARCHAR[])
    GROUP BY ALL
),
ranked AS (
    SELECT
        run_id,
        row_number() OVER (PARTITION BY run_id ORDER BY refusals DESC, opening) AS rank,
        opening,
        refusals,
        refusals / sum(refusals) OVER (PARTITION BY run_id) AS share
    FROM counts
)
SELECT r.run_id, n.name AS run_name, r.rank, r.opening, r.refusals, r.share
FROM ranked r
LEFT JOIN (SELECT run_id, any_value(name) AS name FROM runs GROUP BY run_id) n USING (run_id)
WHERE r.rank <= $top
ORDER BY run_name NULLS LAST, r.run_id, r.rank
