-- The runs a report shows when none are named: every run with labels from $labeler,
-- the study's methods first in the study's order, then the rest oldest first.
-- Parameters: $labeler, $order (list of method names in the order to show them).
SELECT r.run_id
FROM runs r
WHERE EXISTS (SELECT 1 FROM labels_of($labeler) l WHERE l.run_id = r.run_id)
ORDER BY coalesce(list_position($order, lower(r.name)), len($order) + 1), r.created_at, r.run_id
