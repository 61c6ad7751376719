-- A run's human labels after `refusaldata review import`: the imported verdicts, then the
-- stored ones of responses the import did not review (a later review of a response
-- replaces the earlier one; every other verdict is kept). Store.update runs it on the
-- rows read under the partition's lock, so a concurrent import's verdicts are never lost.
-- Relations:
--   fresh   the imported rows of one run (labels columns)
--   stored  the run's human labels partition as stored
SELECT * FROM fresh
UNION ALL BY NAME
SELECT * FROM stored s
WHERE NOT EXISTS (SELECT 1 FROM fresh f WHERE f.prompt_id = s.prompt_id AND f.sample_index = s.sample_index)
