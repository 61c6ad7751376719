-- Which of the compared runs hold any label from the refusal labeler, on any prompt of
-- any split: a run missing here has not been labelled, whereas a labelled run with no
-- prompt of the chosen split is a row with n 0.
-- Needs sql/best_labels.sql (labels_of). Parameters: $runs (list of run ids), $labeler.
SELECT DISTINCT run_id
FROM labels_of($labeler)
WHERE list_contains($runs, run_id) AND refusal IS NOT NULL
