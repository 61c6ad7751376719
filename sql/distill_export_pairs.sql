-- Preference set $name in TRL's conversational preference format: prompt (the user turn),
-- chosen (the refusal target; on a boundary pair, the compliant answer) and rejected (the
-- student's compliant answer; on a boundary pair, a refusal), each a list of messages, plus
-- kind (refusal or boundary; refusal for a set built before pairs had kinds) and every
-- provenance column.
-- Parameters: $name.
SELECT
    [{'role': 'user', 'content': prompt}] AS prompt,
    [{'role': 'assistant', 'content': chosen}] AS chosen,
    [{'role': 'assistant', 'content': rejected}] AS rejected,
    set_name, mode, coalesce(kind, 'refusal') AS kind, prompt_id, split, student_run, source_run, template_id,
    source_prompt_id, source_sample_index, rejected_sample_index
FROM pairs
WHERE set_name = $name
ORDER BY prompt_id
