-- The best layer of the latest separability probe (refusaldata/separability.py) of a model
-- without an adapter: the row the report draws as the trade-off chart's ceiling.
-- Parameters: $model (the runs' model label; NULL: any model).
SELECT *
FROM separability
WHERE best AND adapter IS NULL AND ($model IS NULL OR model = $model)
ORDER BY created_at DESC, probe_id
LIMIT 1
