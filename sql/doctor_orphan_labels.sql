-- Labels whose response no longer exists: per run, the labels of labeler $labeler that no row of
-- `responses` with the same (run_id, prompt_id, sample_index) answers. Doctor passes 'human':
-- a person's verdict cannot be redone by relabelling, and one whose response is gone counts
-- nowhere.
-- Parameters: $labeler. Columns: run_id, labels (how many), prompt_id (the first of them).
SELECT l.run_id, count(*) AS labels, min(l.prompt_id) AS prompt_id
FROM labels AS l
WHERE l.labeler = $labeler
  AND NOT EXISTS (SELECT 1 FROM responses AS r
                  WHERE r.run_id = l.run_id AND r.prompt_id = l.prompt_id AND r.sample_index = l.sample_index)
GROUP BY l.run_id
ORDER BY l.run_id
