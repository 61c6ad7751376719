-- The best refusal verdict of each labelled response, and the one way queries read a
-- labeler's verdicts.
-- rd_verdict(verdict, refusal): the stored verdict; for files written before labels had
--   one, 'refusal' or 'compliance' from refusal (NULL when refusal is).
-- best_labels: the columns of `labels`, one row per response: the `human` row where a
--   person reviewed the response (`refusaldata review import`), else the row of the
--   default labeler, `ngram`, else (stores labelled before it was the default) `hybrid`'s,
--   else the `rules` row. Responses none of the four labelled are absent.
-- labels_of(name): the rows of labeler `name`, or best_labels when name is 'best'
--   (`--labeler best`), with verdict filled by rd_verdict.
-- No parameters; needs the `labels` view (Store.connect, sql/views.sql).
CREATE OR REPLACE MACRO rd_verdict(verdict, refusal) AS
    coalesce(verdict, CASE WHEN refusal THEN 'refusal' WHEN NOT refusal THEN 'compliance' END);

CREATE OR REPLACE VIEW best_labels AS
SELECT * REPLACE (rd_verdict(verdict, refusal) AS verdict)
FROM labels
WHERE labeler IN ('human', 'ngram', 'hybrid', 'rules')
QUALIFY row_number() OVER (PARTITION BY run_id, prompt_id, sample_index
                           ORDER BY list_position(['human', 'ngram', 'hybrid', 'rules'], labeler)) = 1;

CREATE OR REPLACE MACRO labels_of(name) AS TABLE
SELECT * REPLACE (rd_verdict(verdict, refusal) AS verdict) FROM labels WHERE labeler = name AND name <> 'best'
UNION ALL
SELECT * FROM best_labels WHERE name = 'best';
