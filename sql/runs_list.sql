-- Every run as `refusaldata runs` lists it, oldest first: name, id, model, adapter, where
-- it came from ('generated (BACKEND)', or 'imported (FORMAT)' from its config), how many
-- responses it holds, the labelers that labelled some of them (comma-separated, sorted)
-- and when the run was created. No parameters.
WITH answered AS (
    SELECT run_id, count(*)::BIGINT AS responses FROM responses GROUP BY run_id
), labelled AS (
    SELECT run_id, string_agg(labeler, ', ' ORDER BY labeler) AS labelers
    FROM (SELECT DISTINCT run_id, labeler FROM labels)
    GROUP BY run_id
)
SELECT r.name,
       r.run_id,
       r.model,
       r.adapter,
       CASE WHEN r.backend = 'import'
            THEN 'imported (' || coalesce(json_extract_string(r.config, '$.format'), 'unknown') || ')'
            ELSE 'generated (' || r.backend || ')' END AS source,
       coalesce(a.responses, 0)::BIGINT AS responses,
       l.labelers,
       r.created_at
FROM runs r
LEFT JOIN answered a USING (run_id)
LEFT JOIN labelled l USING (run_id)
ORDER BY r.created_at NULLS FIRST, r.run_id
