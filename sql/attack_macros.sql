-- The table macro of the by-attack queries (compare_attacks.sql, mine_attack_pairs.sql).
-- prompt_attacks(wanted_split): one row per prompt_id with a row in split wanted_split
--   ('all': every split): harmful (any of its rows says so), attack (NULL: unattacked;
--   the same attacked text in two data sets came from the same attack) and source_prompt
--   (for an attacked prompt, its source_ref: the unattacked prompt it was made from).
CREATE OR REPLACE MACRO prompt_attacks(wanted_split) AS TABLE
    SELECT prompt_id,
           bool_or(harmful) AS harmful,
           min(attack) AS attack,
           min(source_ref) FILTER (WHERE attack IS NOT NULL) AS source_prompt
    FROM prompts
    WHERE wanted_split = 'all' OR split = wanted_split
    GROUP BY prompt_id;
