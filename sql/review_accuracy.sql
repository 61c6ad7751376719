-- How often each machine labeler agrees with people on a random sample: over the human
-- verdicts of `review export --random` files (labels of labeler 'human' whose raw JSON says
-- sample 'random'), per labeler and run, and per labeler over all the runs (run_id NULL).
-- sampled: human verdicts in the sample; labelled: those the labeler gave a verdict too;
-- agree: its refusal (yes/no) equals the person's; agreement: agree / labelled with a 95%
-- Wilson interval; verdict_agreement: the share whose three-way verdict (compliance,
-- refusal, partial) is the person's.
-- Needs sql/mine_macros.sql (wilson_low, wilson_high). Parameters:
--   $run_ids  VARCHAR[] of runs (empty: every run with a random sample)
WITH sampled AS (
    SELECT run_id, prompt_id, sample_index, refusal AS human_refusal, verdict AS human_verdict
    FROM labels
    WHERE labeler = 'human' AND json_extract_string(raw, '$.sample') = 'random'
      AND (len($run_ids::VARCHAR[]) = 0 OR list_contains($run_ids::VARCHAR[], run_id))
),
sample_sizes AS (
    SELECT run_id, count(*) AS sampled FROM sampled GROUP BY run_id
),
machine AS (
    SELECT s.run_id, l.labeler, l.refusal = s.human_refusal AS agrees, l.verdict = s.human_verdict AS same_verdict
    FROM sampled s
    JOIN labels l ON l.run_id = s.run_id AND l.prompt_id = s.prompt_id AND l.sample_index = s.sample_index
    WHERE l.labeler <> 'human' AND l.refusal IS NOT NULL
),
counted AS (
    SELECT labeler, run_id, count(*) AS labelled, count(*) FILTER (agrees) AS agree,
           count(*) FILTER (same_verdict) / count(*) FILTER (same_verdict IS NOT NULL) AS verdict_agreement
    FROM machine
    GROUP BY GROUPING SETS ((labeler, run_id), (labeler))
)
SELECT c.labeler,
       c.run_id,
       CASE WHEN c.run_id IS NULL THEN (SELECT sum(sampled) FROM sample_sizes) ELSE z.sampled END::BIGINT AS sampled,
       c.labelled::BIGINT AS labelled,
       c.agree::BIGINT AS agree,
       c.agree / c.labelled AS agreement,
       wilson_low(c.agree, c.labelled) AS agreement_low,
       wilson_high(c.agree, c.labelled) AS agreement_high,
       c.verdict_agreement
FROM counted c
LEFT JOIN sample_sizes z USING (run_id)
ORDER BY c.labeler, c.run_id NULLS LAST
