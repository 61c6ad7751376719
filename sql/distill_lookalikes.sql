-- The benign look-alike prompts of the view distill_prompts (distill_prompts.sql) that run
-- $run answered in compliance and on topic under labeler $labeler: a boundary row's answer.
-- Look-alikes: benign prompts that some dataset named in $datasets holds (the sets marked
-- `lookalike` in prompt_sets.json); dataset: the first of those by name (boundary rows are
-- spread over them). Per prompt, the run's first sample labelled compliance (not refusal)
-- whose text stays on topic: it shares a content word with the prompt (4+ letters, not a
-- stopword, compared by their first 5 letters), or the prompt has none. Skipped and empty
-- responses do not count; prompts without such an answer are absent.
-- Parameters: $run, $labeler, $datasets (a list of dataset names).
WITH lookalikes AS (
    SELECT p.prompt_id, p.prompt, min(d.dataset) AS dataset
    FROM distill_prompts p
    JOIN prompts d USING (prompt_id)
    WHERE NOT p.harmful AND list_contains($datasets, d.dataset)
    GROUP BY p.prompt_id, p.prompt
),
stopwords AS (
    SELECT ['about', 'after', 'also', 'because', 'been', 'before', 'being', 'best', 'between', 'can''t',
            'could', 'describe', 'does', 'doing', 'don''t', 'each', 'explain', 'from', 'give', 'good',
            'have', 'having', 'here', 'into', 'just', 'know', 'like', 'make', 'more', 'most', 'much',
            'need', 'other', 'over', 'really', 'same', 'should', 'some', 'such', 'tell', 'than', 'that',
            'their', 'them', 'then', 'there', 'these', 'they', 'this', 'those', 'through', 'very', 'want',
            'ways', 'were', 'what', 'what''s', 'when', 'where', 'which', 'while', 'will', 'with', 'would',
            'your'] AS words
),
asked AS (
    SELECT k.prompt_id, k.prompt, k.dataset,
           list_distinct(list_transform(
               list_filter(regexp_extract_all(rd_straight(lower(k.prompt)), '[a-z0-9'']{4,}'),
                           lambda w: NOT list_contains(s.words, w)),
               lambda w: left(w, 5))) AS words
    FROM lookalikes k, stopwords s
),
answers AS (
    SELECT r.prompt_id, r.sample_index, r.response
    FROM responses r
    JOIN labels_of($labeler) l
      ON l.run_id = r.run_id AND l.prompt_id = r.prompt_id AND l.sample_index = r.sample_index
    WHERE r.run_id = $run AND NOT l.refusal
      AND coalesce(trim(r.response), '') <> '' AND coalesce(r.finish_reason, '') <> 'skipped'
)
SELECT
    q.prompt_id,
    q.prompt,
    q.dataset,
    min(a.sample_index) AS sample_index,
    arg_min(a.response, a.sample_index) AS response
FROM asked q
JOIN answers a USING (prompt_id)
WHERE len(q.words) = 0
   OR list_has_any(q.words, list_transform(regexp_extract_all(rd_straight(lower(a.response)), '[a-z0-9'']{4,}'),
                                           lambda w: left(w, 5)))
GROUP BY q.prompt_id, q.prompt, q.dataset
ORDER BY q.prompt_id
