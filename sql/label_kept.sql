-- The labels of some runs that `label` keeps when it labels the rest: rows of $labeler at
-- its current version $version on responses still answered (none when $force). Every
-- other row of the partition (an older version, a response gone) is dropped or relabelled.
-- Parameters:
--   $run_ids  VARCHAR[] of the runs
--   $labeler  the labeler's stored name
--   $version  the labeler's current version
--   $force    true: keep nothing
SELECT l.*
FROM labels AS l
WHERE l.labeler = $labeler
  AND list_contains($run_ids, l.run_id)
  AND NOT $force
  AND l.labeler_version = $version
  AND EXISTS (
      SELECT 1 FROM responses AS r
      WHERE r.run_id = l.run_id AND r.prompt_id = l.prompt_id AND r.sample_index = l.sample_index
        AND r.response IS NOT NULL AND r.finish_reason IS DISTINCT FROM 'skipped')
