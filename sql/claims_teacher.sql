-- The teacher of a study (its run id and name): the run a cross-mode set (sft or pairs)
-- took its refusal targets from, among the sets the given runs' adapters were trained on
-- (runs.adapter is the adapters table's path); the run most targets came from, ties by run
-- id. The report's claims measure how far distillation moved the student's refusals toward
-- the teacher's pattern.
-- No row where no such run is stored (runs imported without their sets, old stores).
-- Parameters: $runs (list of run ids: the study's runs).
WITH trained AS (
    SELECT DISTINCT a.set_name
    FROM runs r
    JOIN adapters a ON a.path = r.adapter
    WHERE list_contains($runs, r.run_id)
),
targets AS (
    SELECT set_name, mode, kind, source_run FROM sft
    UNION ALL
    SELECT set_name, mode, kind, source_run FROM pairs
)
SELECT t.source_run AS run_id, any_value(r.name) AS name, count(*) AS targets
FROM targets t
JOIN trained USING (set_name)
JOIN (SELECT run_id, any_value(name) AS name FROM runs GROUP BY run_id) r ON r.run_id = t.source_run
WHERE t.mode = 'cross'
  AND coalesce(t.kind, 'refusal') = 'refusal'
GROUP BY t.source_run
ORDER BY targets DESC, t.source_run
LIMIT 1
