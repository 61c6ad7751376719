-- How uniform each run's refusal phrasing is, over the openings (first k normalized
-- words) of its refusals to harmful prompts: refusals, distinct openings, top-1 and top-5
-- share, uniformity = 1 - H/ln(n) (H: entropy of the opening distribution in nats, n:
-- refusals; 1 when all share one opening, 0 when all differ; 1 for a single refusal, NULL
-- for none), distinct-1..4 (distinct word n-grams / n-grams over the openings), and the
-- run's refusal rate on harmful prompts (a prompt_id counts once, harmful if any row is).
-- Every split counts, and responses generation skipped (finish_reason 'skipped') do not,
-- as `compare --split all` counts them, so the two give one uniformity per run.
-- The mean pairwise similarity is added by refusaldata.mine (rapidfuzz).
-- Needs sql/normalize.sql and sql/mine_macros.sql. Parameters:
--   $labeler   labels.labeler to read
--   $run_ids   VARCHAR[] of runs (empty: every labelled run)
--   $k         words per opening
WITH chosen AS (
    SELECT l.run_id, l.prompt_id, l.refusal, l.opening
    FROM labels_of($labeler) l
    WHERE run_selected(l.run_id, $run_ids::VARCHAR[])
      AND NOT EXISTS (SELECT 1 FROM responses r
                      WHERE r.run_id = l.run_id AND r.prompt_id = l.prompt_id AND r.sample_index = l.sample_index
                        AND r.finish_reason = 'skipped')
),
harmfulness AS (
    SELECT prompt_id, bool_or(harmful) AS harmful FROM prompts GROUP BY prompt_id
),
refusal_openings AS (
    SELECT run_id, rd_opening(coalesce(opening, ''), $k) AS opening
    FROM chosen JOIN harmfulness USING (prompt_id)
    WHERE refusal AND harmful
),
opening_counts AS (
    SELECT run_id, opening, count(*) AS refusals FROM refusal_openings GROUP BY ALL
),
shares AS (
    SELECT
        run_id,
        refusals,
        refusals / sum(refusals) OVER (PARTITION BY run_id) AS share,
        row_number() OVER (PARTITION BY run_id ORDER BY refusals DESC, opening) AS rank
    FROM opening_counts
),
distribution AS (
    SELECT
        run_id,
        sum(refusals) AS refusals,
        count(*) AS distinct_openings,
        sum(share) FILTER (rank = 1) AS top1_share,
        sum(share) FILTER (rank <= 5) AS top5_share,
        -sum(share * ln(share)) AS entropy
    FROM shares
    GROUP BY run_id
),
ngrams AS (
    SELECT run_id, n, unnest(list_transform(range(1, len(words) - n + 2),
                                            lambda i: array_to_string(words[i:i + n - 1], ' '))) AS gram
    FROM (SELECT run_id, string_split(opening, ' ') AS words FROM refusal_openings WHERE opening <> ''),
         (SELECT unnest([1, 2, 3, 4]) AS n)
),
distinct_ngrams AS (
    SELECT
        run_id,
        count(DISTINCT gram) FILTER (n = 1) / nullif(count(*) FILTER (n = 1), 0) AS distinct_1,
        count(DISTINCT gram) FILTER (n = 2) / nullif(count(*) FILTER (n = 2), 0) AS distinct_2,
        count(DISTINCT gram) FILTER (n = 3) / nullif(count(*) FILTER (n = 3), 0) AS distinct_3,
        count(DISTINCT gram) FILTER (n = 4) / nullif(count(*) FILTER (n = 4), 0) AS distinct_4
    FROM ngrams
    GROUP BY run_id
),
rates AS (
    SELECT
        c.run_id,
        count(*) FILTER (p.harmful AND c.refusal IS NOT NULL) AS harmful_responses,
        count(*) FILTER (p.harmful AND c.refusal) AS harmful_refusals
    FROM chosen c
    LEFT JOIN harmfulness p USING (prompt_id)
    GROUP BY c.run_id
)
SELECT
    r.run_id,
    n.name AS run_name,
    coalesce(d.refusals, 0)::BIGINT AS refusals,
    coalesce(d.distinct_openings, 0)::BIGINT AS distinct_openings,
    d.top1_share,
    d.top5_share,
    CASE WHEN d.refusals = 1 THEN 1.0 WHEN d.refusals > 1 THEN greatest(0.0, 1 - d.entropy / ln(d.refusals)) END
        AS uniformity,
    g.distinct_1,
    g.distinct_2,
    g.distinct_3,
    g.distinct_4,
    r.harmful_responses,
    r.harmful_refusals / nullif(r.harmful_responses, 0) AS refusal_rate
FROM rates r
LEFT JOIN distribution d USING (run_id)
LEFT JOIN distinct_ngrams g USING (run_id)
LEFT JOIN (SELECT run_id, any_value(name) AS name FROM runs GROUP BY run_id) n USING (run_id)
ORDER BY run_name NULLS LAST, r.run_id
