-- The runs being compared: what names them and how many refusal templates each has.
-- Parameters: $runs (list of run ids), $labeler (the labeler the templates were mined
-- from), $k (their opening length).
-- templates is NULL where the templates table holds none for the run (not mined yet).
SELECT r.run_id,
       r.name,
       r.model,
       r.adapter,
       t.templates
FROM runs r
LEFT JOIN (
    SELECT run_id, count(*) AS templates
    FROM templates_of($labeler)
    WHERE k = $k AND list_contains($runs, run_id)
    GROUP BY run_id
) t USING (run_id)
WHERE list_contains($runs, r.run_id)
