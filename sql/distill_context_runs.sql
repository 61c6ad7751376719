-- The student run $student and the context run $context as the runs table records them:
-- what a context-distillation set checks (same model and adapter; the context run was
-- generated under a system prompt or few-shot turns, kept in its config JSON).
-- Parameters: $student, $context.
SELECT run_id, model, adapter, system_prompt, config
FROM runs
WHERE run_id IN ($student, $context)
ORDER BY run_id
