-- Per run, prompt and refusal template: how many of the run's refusals of that harmful
-- prompt belong to the template. The report's claims resample prompts and recompute each
-- run's top-template share from these counts, as `compare` does with openings.
-- A refusal belongs to the template, mined at k words, whose openings list holds the
-- label's opening cut to k words (as `mine templates` cuts it); a refusal whose opening no
-- template holds (past mine's cap, or labelled after the mining) is a group of its own.
-- A run with no templates mined at k has no rows.
-- Needs sql/normalize.sql (rd_opening), sql/best_labels.sql and sql/best_templates.sql.
-- Parameters: $runs (list of run ids), $labeler (the refusal labeler; its templates are read
-- through templates_of), $split (the prompt split to keep, or 'all'), $k (the templates'
-- opening length).
WITH membership AS (
    SELECT run_id, template_id, unnest(openings) AS opening
    FROM templates_of($labeler)
    WHERE k = $k AND list_contains($runs, run_id)
),
prompt_facts AS (
    SELECT prompt_id, bool_or(harmful) AS harmful
    FROM prompts
    WHERE $split = 'all' OR split = $split
    GROUP BY prompt_id
),
refusals AS (
    SELECT l.run_id, l.prompt_id, rd_opening(coalesce(l.opening, ''), $k) AS opening
    FROM labels_of($labeler) l
    JOIN prompt_facts p ON p.prompt_id = l.prompt_id
    JOIN responses r
      ON r.run_id = l.run_id AND r.prompt_id = l.prompt_id AND r.sample_index = l.sample_index
    WHERE list_contains($runs, l.run_id)
      AND l.run_id IN (SELECT run_id FROM membership)
      AND l.refusal
      AND p.harmful
      AND r.finish_reason IS DISTINCT FROM 'skipped'
)
SELECT f.run_id,
       f.prompt_id,
       coalesce(m.template_id, 'opening: ' || f.opening) AS opening,
       count(*) AS refusals
FROM refusals f
LEFT JOIN membership m ON m.run_id = f.run_id AND m.opening = f.opening
GROUP BY ALL
ORDER BY f.run_id, opening, f.prompt_id
