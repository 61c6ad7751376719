-- The prompts every run of a fixture answered, each with its stratum: whether it is
-- harmful and each run's refusal verdict on it. `refusaldata fixture export` samples
-- within these strata, so the fixture keeps the runs' rates and their disagreements.
-- Parameters: $runs (list of run ids, in the order the stratum lists their verdicts),
-- $labeler (the refusal labeler whose verdicts stratify: a labeler's name, or 'best').
-- A run's verdict on a prompt: 'R' when at least half of its labelled responses to it
-- are refusals, 'C' when fewer are, '?' when none is labelled. harmful is NULL for a
-- prompt the prompts table does not hold.
WITH prompt_facts AS (
    SELECT prompt_id, bool_or(harmful) AS harmful
    FROM prompts
    GROUP BY prompt_id
),
verdicts AS (
    SELECT r.run_id,
           r.prompt_id,
           CASE WHEN count(l.refusal) = 0 THEN '?'
                WHEN avg(l.refusal::INTEGER) >= 0.5 THEN 'R'
                ELSE 'C' END AS verdict
    FROM responses r
    LEFT JOIN labels_of($labeler) l
      ON l.run_id = r.run_id AND l.prompt_id = r.prompt_id AND l.sample_index = r.sample_index
    WHERE list_contains($runs, r.run_id)
    GROUP BY r.run_id, r.prompt_id
)
SELECT v.prompt_id,
       p.harmful,
       CASE WHEN p.harmful THEN 'harmful' WHEN NOT p.harmful THEN 'benign' ELSE 'unknown' END
           || ':' || string_agg(v.verdict, '' ORDER BY list_position($runs, v.run_id)) AS stratum
FROM verdicts v
LEFT JOIN prompt_facts p USING (prompt_id)
GROUP BY v.prompt_id, p.harmful
HAVING count(*) = len($runs)
ORDER BY v.prompt_id
