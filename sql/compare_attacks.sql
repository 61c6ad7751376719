-- Per run and harmful prompt: the attack that made the prompt (NULL: unattacked), its
-- labelled responses and refusals, and the same counts for its source prompt (source_ref,
-- the unattacked prompt it was made from) where the run answered that one too. These are
-- the rows `refusaldata compare --by attack` resamples: the prompt (or the pair of an
-- attacked prompt and its source) is the bootstrap's unit.
-- Parameters: $runs (list of run ids), $labeler (the refusal labeler), $split (the
-- prompt split to keep, or 'all').
-- Needs sql/attack_macros.sql (prompt_attacks: a prompt's harmfulness, attack and source).
-- Responses without a refusal verdict, and those generation skipped, are left out.
WITH answered AS (
    SELECT l.run_id,
           l.prompt_id,
           count(*) AS responses,
           count(*) FILTER (WHERE l.refusal) AS refusals
    FROM labels_of($labeler) l
    JOIN responses r
      ON r.run_id = l.run_id AND r.prompt_id = l.prompt_id AND r.sample_index = l.sample_index
    WHERE list_contains($runs, l.run_id)
      AND l.refusal IS NOT NULL
      AND r.finish_reason IS DISTINCT FROM 'skipped'
    GROUP BY l.run_id, l.prompt_id
)
SELECT a.run_id,
       a.prompt_id,
       p.attack,
       a.responses,
       a.refusals,
       s.responses AS source_responses,
       s.refusals AS source_refusals
FROM answered a
JOIN prompt_attacks($split) p USING (prompt_id)
LEFT JOIN answered s ON s.run_id = a.run_id AND s.prompt_id = p.source_prompt
WHERE p.harmful
ORDER BY a.run_id, p.attack NULLS FIRST, a.prompt_id
