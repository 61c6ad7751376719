-- The runs a report shows when none are named: every run with labels from $labeler,
-- the study's methods first in the study's order, then the rest by their method's oldest
-- run. A run named M<$suffix> (method M trained without boundary rows) comes right after
-- the runs named M, whether M is one of the study's methods or not.
-- Parameters: $labeler, $order (list of method names in the order to show them),
-- $suffix (the ending that names a run without boundary rows).
WITH labelled AS (
    SELECT r.run_id, r.created_at, lower(r.name) AS name
    FROM runs r
    WHERE EXISTS (SELECT 1 FROM labels_of($labeler) l WHERE l.run_id = r.run_id)
), methods AS (
    SELECT run_id, created_at, name, ablation,
           CASE WHEN ablation THEN name[:len(name) - len($suffix)] ELSE coalesce(name, run_id) END AS method
    FROM (SELECT *, coalesce(len(name) > len($suffix) AND suffix(name, $suffix), false) AS ablation
          FROM labelled)
)
SELECT run_id
FROM methods
ORDER BY coalesce(list_position($order, name), list_position($order, method), len($order) + 1),
         min(created_at) OVER (PARTITION BY method), method, ablation, created_at, run_id
