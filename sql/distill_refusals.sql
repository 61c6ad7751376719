-- Every refusal of run $run (labeler $labeler) on a harmful prompt of the view
-- distill_prompts, with its template and whether that template is dominant.
-- A refusal belongs to the template whose openings list holds its label's opening cut to
-- the template's k words (as `mine templates` cuts it), among the templates of the run's
-- latest mining (one k). Dominant templates: taken by support (ties by template_id) until
-- they cover $dominant_share of the templates' support, so a run with one main pattern
-- has one dominant template and a varied run has several.
-- Needs sql/normalize.sql (rd_opening), sql/best_labels.sql and sql/best_templates.sql.
-- Parameters: $run, $labeler, $dominant_share.
WITH latest AS (
    SELECT k FROM templates_of($labeler) WHERE run_id = $run
    ORDER BY created_at DESC, k DESC LIMIT 1
),
mined AS (
    SELECT template_id, support, openings
    FROM templates_of($labeler)
    WHERE run_id = $run AND k = (SELECT k FROM latest)
),
ranked AS (
    SELECT
        template_id,
        openings,
        coalesce(sum(support) OVER (ORDER BY support DESC, template_id
                                    ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
            < $dominant_share * sum(support) OVER () AS dominant
    FROM mined
),
membership AS (
    SELECT template_id, dominant, unnest(openings) AS opening FROM ranked
),
refusals AS (
    SELECT r.prompt_id, r.sample_index, r.response, rd_opening(l.opening, (SELECT k FROM latest)) AS opening
    FROM responses r
    JOIN labels_of($labeler) l
      ON l.run_id = r.run_id AND l.prompt_id = r.prompt_id AND l.sample_index = r.sample_index
    WHERE r.run_id = $run AND l.refusal
      AND coalesce(trim(r.response), '') <> '' AND coalesce(r.finish_reason, '') <> 'skipped'
)
SELECT
    f.prompt_id,
    p.prompt,
    f.sample_index,
    f.response,
    m.template_id,
    coalesce(m.dominant, false) AS dominant
FROM refusals f
JOIN distill_prompts p USING (prompt_id)
LEFT JOIN membership m ON m.opening = f.opening
WHERE p.harmful
QUALIFY row_number() OVER (PARTITION BY f.prompt_id, f.sample_index
                           ORDER BY m.dominant DESC NULLS LAST, m.template_id) = 1
ORDER BY f.prompt_id, f.sample_index
