-- What `evaluate capability` needs to ask run $run's model again: its runs row (model,
-- adapter, backend, context, sampling, config JSON) and how many responses it stored.
-- Parameters: $run.
SELECT r.run_id, r.name, r.model, r.adapter, r.backend, r.system_prompt, r.temperature, r.top_p,
       r.max_tokens, r.seed, r.dtype, r.config,
       (SELECT count(*) FROM responses WHERE run_id = $run) AS responses
FROM runs r
WHERE r.run_id = $run
