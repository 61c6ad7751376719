-- The prompts a separability probe reads, one row per distinct prompt of the chosen data sets:
-- harmful if any of its rows is; `fitted` when it is in the train split of a data set the
-- probe fits on; `evaluated` when it is in the test split of a data set that scores the
-- probe. A prompt that is both is only evaluated (the caller drops it from fitting), so a
-- validation set copied from train prompts never scores a probe fitted on them.
-- Parameters: $datasets (VARCHAR[]: the data sets to fit on),
--   $eval_datasets (VARCHAR[]: the data sets whose test split scores the probe).
SELECT
    prompt_id,
    any_value(text ORDER BY dataset) AS text,
    bool_or(harmful) AS harmful,
    bool_or(split = 'train' AND list_contains($datasets, dataset)) AS fitted,
    bool_or(split = 'test' AND list_contains($eval_datasets, dataset)) AS evaluated
FROM prompts
WHERE list_contains($datasets, dataset) OR list_contains($eval_datasets, dataset)
GROUP BY prompt_id
ORDER BY prompt_id
