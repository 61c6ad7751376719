-- The built distillation sets: rows per (table, set, mode, kind, student run, source run,
-- split); kind is refusal, retention or boundary for sft and refusal or boundary for pairs
-- (a pairs set built before pairs had kinds reads as refusal).
-- Parameters: none.
SELECT 'sft' AS "table", set_name, mode, kind, student_run, source_run, split, count(*) AS "rows"
FROM sft
GROUP BY ALL
UNION ALL
SELECT 'pairs', set_name, mode, coalesce(kind, 'refusal'), student_run, source_run, split, count(*)
FROM pairs
GROUP BY ALL
ORDER BY "table" DESC, set_name, mode, kind, student_run, source_run NULLS FIRST, split
