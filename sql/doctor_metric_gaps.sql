-- Training steps without their train_metrics row: for every adapter with a stored adapters row or
-- metrics, the steps 1..N that have none, where N is the finished run's step count (the "steps"
-- of adapters.config) or, for a run not finished yet, its highest stored step. The loop stores
-- the metrics of every step a checkpoint covers before saving it, so in a healthy store no step
-- below a checkpoint, and none of a finished adapter, is missing.
-- Parameters: none. Columns: adapter_id, finished, steps (N), missing (the step numbers, ascending).
WITH finished AS (
    SELECT adapter_id, TRY_CAST(json_extract_string(config, '$.steps') AS BIGINT) AS steps
    FROM adapters
), stored AS (
    SELECT adapter_id, max(step)::BIGINT AS highest
    FROM train_metrics
    GROUP BY adapter_id
), expected AS (
    SELECT coalesce(f.adapter_id, s.adapter_id) AS adapter_id, f.adapter_id IS NOT NULL AS finished,
           coalesce(f.steps, s.highest) AS steps
    FROM finished AS f
    FULL OUTER JOIN stored AS s ON s.adapter_id = f.adapter_id
), numbered AS (
    SELECT adapter_id, finished, steps, unnest(generate_series(1, steps)) AS step
    FROM expected
    WHERE steps >= 1
)
SELECT n.adapter_id, n.finished, n.steps, list(n.step ORDER BY n.step) AS missing
FROM numbered AS n
WHERE NOT EXISTS (SELECT 1 FROM train_metrics AS m WHERE m.adapter_id = n.adapter_id AND m.step = n.step)
GROUP BY n.adapter_id, n.finished, n.steps
ORDER BY n.adapter_id
