-- The refusal templates a reader of labeler `name` uses, as best_labels.sql resolves labels.
-- templates_of(name): the templates mined from labeler `name`'s labels; for 'best'
--   (`--labeler best`), per run, those mined with --labeler best, else those mined from
--   ngram's labels, else hybrid's, else the rules' (stores mined before best existed), so a store
--   labelled and mined with the rules keeps working under the new default.
-- No parameters; needs the `templates` view (Store.connect, sql/views.sql).
CREATE OR REPLACE MACRO templates_of(name) AS TABLE
SELECT * FROM templates WHERE labeler = name AND name <> 'best'
UNION ALL
SELECT * EXCLUDE (preference) FROM (
    SELECT *, dense_rank() OVER (PARTITION BY run_id
                                 ORDER BY list_position(['best', 'ngram', 'hybrid', 'rules'], labeler)) AS preference
    FROM templates
    WHERE name = 'best' AND labeler IN ('best', 'ngram', 'hybrid', 'rules'))
WHERE preference = 1;
