-- What a run offers a distillation set under labeler $labeler: its labelled responses,
-- its refusals among them, and how many refusal templates were mined for it.
-- Parameters: $run, $labeler.
SELECT
    (SELECT count(*) FROM labels_of($labeler)
      WHERE run_id = $run AND refusal IS NOT NULL) AS labelled,
    (SELECT count(*) FROM labels_of($labeler)
      WHERE run_id = $run AND refusal) AS refusals,
    (SELECT count(*) FROM templates_of($labeler)
      WHERE run_id = $run) AS templates
