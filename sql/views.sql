-- The store's tables as DuckDB views, for analysts in the plain duckdb CLI.
-- Parameters: the variable `store`, the store's folder (default ./parquet_cache).
-- Usage, from the project folder:
--   duckdb -cmd "SET VARIABLE store = 'parquet_cache'" -cmd ".read sql/views.sql"
-- As the library does, each view reads only the store's own files (its naming rules:
-- `key=value` partition folders, then part-<32 hex>.parquet or data.parquet), never the
-- path above the store (hive_partitioning = false), and a column that older files lack
-- reads as NULL (the typed empty row set first, UNION ALL BY NAME).
-- A view over a table with no files yet fails with "No files found": on such a store use
-- `refusaldata sql --print-setup`, which prints these statements with typed empty views
-- for the empty tables and every macro `refusaldata sql` has.
-- tests/test_sql.py checks each statement against refusaldata/schemas.py.
-- The last four statements are sql/best_labels.sql and sql/best_templates.sql as they are
-- (rd_verdict, the best_labels view, the labels_of and templates_of macros; see there),
-- which the library runs too.
CREATE OR REPLACE VIEW prompts AS
SELECT * FROM (SELECT NULL::VARCHAR AS "prompt_id", NULL::VARCHAR AS "dataset", NULL::VARCHAR AS "category", NULL::VARCHAR AS "text", NULL::BOOLEAN AS "harmful", NULL::VARCHAR AS "split", NULL::VARCHAR AS "source_ref", NULL::VARCHAR AS "context", NULL::TIMESTAMP WITH TIME ZONE AS "imported_at", NULL::VARCHAR AS "attack" LIMIT 0)
UNION ALL BY NAME
SELECT * EXCLUDE (filename)
FROM read_parquet(getvariable('store') || '/prompts/*/*.parquet', filename = true, hive_partitioning = false, union_by_name = true)
WHERE regexp_full_match(filename, '.*/prompts/dataset=[^/]+/part-[0-9a-f]{32}\.parquet');
CREATE OR REPLACE VIEW runs AS
SELECT * FROM (SELECT NULL::VARCHAR AS "run_id", NULL::VARCHAR AS "name", NULL::VARCHAR AS "model", NULL::VARCHAR AS "adapter", NULL::VARCHAR AS "backend", NULL::VARCHAR AS "system_prompt", NULL::VARCHAR AS "chat_template_sha", NULL::VARCHAR AS "dtype", NULL::DOUBLE AS "temperature", NULL::DOUBLE AS "top_p", NULL::INTEGER AS "max_tokens", NULL::INTEGER AS "n", NULL::BIGINT AS "seed", NULL::VARCHAR AS "prompts", NULL::VARCHAR AS "split", NULL::VARCHAR AS "config", NULL::VARCHAR AS "versions", NULL::TIMESTAMP WITH TIME ZONE AS "created_at" LIMIT 0)
UNION ALL BY NAME
SELECT * EXCLUDE (filename)
FROM read_parquet(getvariable('store') || '/runs/*.parquet', filename = true, hive_partitioning = false, union_by_name = true)
WHERE regexp_full_match(filename, '.*/runs/part-[0-9a-f]{32}\.parquet');
CREATE OR REPLACE VIEW responses AS
SELECT * FROM (SELECT NULL::VARCHAR AS "run_id", NULL::VARCHAR AS "prompt_id", NULL::INTEGER AS "sample_index", NULL::VARCHAR AS "response", NULL::INTEGER AS "n_prompt_tokens", NULL::INTEGER AS "n_output_tokens", NULL::VARCHAR AS "finish_reason", NULL::TIMESTAMP WITH TIME ZONE AS "created_at", NULL::VARCHAR AS "source_scores" LIMIT 0)
UNION ALL BY NAME
SELECT * EXCLUDE (filename)
FROM read_parquet(getvariable('store') || '/responses/*/*.parquet', filename = true, hive_partitioning = false, union_by_name = true)
WHERE regexp_full_match(filename, '.*/responses/run=[^/]+/part-[0-9a-f]{32}\.parquet');
CREATE OR REPLACE VIEW labels AS
SELECT * FROM (SELECT NULL::VARCHAR AS "run_id", NULL::VARCHAR AS "prompt_id", NULL::INTEGER AS "sample_index", NULL::VARCHAR AS "labeler", NULL::BOOLEAN AS "refusal", NULL::DOUBLE AS "score", NULL::VARCHAR AS "marker", NULL::VARCHAR AS "opening", NULL::BOOLEAN AS "unsafe", NULL::VARCHAR AS "categories", NULL::VARCHAR AS "raw", NULL::TIMESTAMP WITH TIME ZONE AS "created_at", NULL::VARCHAR AS "verdict", NULL::VARCHAR AS "reviewer", NULL::VARCHAR AS "labeler_version" LIMIT 0)
UNION ALL BY NAME
SELECT * EXCLUDE (filename)
FROM read_parquet(getvariable('store') || '/labels/*/*/*.parquet', filename = true, hive_partitioning = false, union_by_name = true)
WHERE regexp_full_match(filename, '.*/labels/labeler=[^/]+/run=[^/]+/data\.parquet');
CREATE OR REPLACE VIEW templates AS
SELECT * FROM (SELECT NULL::VARCHAR AS "run_id", NULL::VARCHAR AS "labeler", NULL::INTEGER AS "k", NULL::VARCHAR AS "template_id", NULL::VARCHAR AS "medoid", NULL::BIGINT AS "support", NULL::DOUBLE AS "share", NULL::VARCHAR[] AS "openings", NULL::TIMESTAMP WITH TIME ZONE AS "created_at" LIMIT 0)
UNION ALL BY NAME
SELECT * EXCLUDE (filename)
FROM read_parquet(getvariable('store') || '/templates/*/*/*/*.parquet', filename = true, hive_partitioning = false, union_by_name = true)
WHERE regexp_full_match(filename, '.*/templates/labeler=[^/]+/run=[^/]+/k=[^/]+/data\.parquet');
CREATE OR REPLACE VIEW sft AS
SELECT * FROM (SELECT NULL::VARCHAR AS "set_name", NULL::VARCHAR AS "mode", NULL::VARCHAR AS "kind", NULL::VARCHAR AS "prompt_id", NULL::VARCHAR AS "split", NULL::VARCHAR AS "prompt", NULL::VARCHAR AS "target", NULL::VARCHAR AS "student_run", NULL::VARCHAR AS "source_run", NULL::VARCHAR AS "template_id", NULL::VARCHAR AS "source_prompt_id", NULL::INTEGER AS "source_sample_index", NULL::TIMESTAMP WITH TIME ZONE AS "created_at" LIMIT 0)
UNION ALL BY NAME
SELECT * EXCLUDE (filename)
FROM read_parquet(getvariable('store') || '/sft/*/*.parquet', filename = true, hive_partitioning = false, union_by_name = true)
WHERE regexp_full_match(filename, '.*/sft/set=[^/]+/data\.parquet');
CREATE OR REPLACE VIEW pairs AS
SELECT * FROM (SELECT NULL::VARCHAR AS "set_name", NULL::VARCHAR AS "mode", NULL::VARCHAR AS "kind", NULL::VARCHAR AS "prompt_id", NULL::VARCHAR AS "split", NULL::VARCHAR AS "prompt", NULL::VARCHAR AS "chosen", NULL::VARCHAR AS "rejected", NULL::VARCHAR AS "student_run", NULL::VARCHAR AS "source_run", NULL::VARCHAR AS "template_id", NULL::VARCHAR AS "source_prompt_id", NULL::INTEGER AS "source_sample_index", NULL::INTEGER AS "rejected_sample_index", NULL::TIMESTAMP WITH TIME ZONE AS "created_at" LIMIT 0)
UNION ALL BY NAME
SELECT * EXCLUDE (filename)
FROM read_parquet(getvariable('store') || '/pairs/*/*.parquet', filename = true, hive_partitioning = false, union_by_name = true)
WHERE regexp_full_match(filename, '.*/pairs/set=[^/]+/data\.parquet');
CREATE OR REPLACE VIEW adapters AS
SELECT * FROM (SELECT NULL::VARCHAR AS "adapter_id", NULL::VARCHAR AS "path", NULL::VARCHAR AS "base_model", NULL::VARCHAR AS "set_name", NULL::VARCHAR AS "loss", NULL::VARCHAR AS "config", NULL::TIMESTAMP WITH TIME ZONE AS "created_at" LIMIT 0)
UNION ALL BY NAME
SELECT * EXCLUDE (filename)
FROM read_parquet(getvariable('store') || '/adapters/*.parquet', filename = true, hive_partitioning = false, union_by_name = true)
WHERE regexp_full_match(filename, '.*/adapters/part-[0-9a-f]{32}\.parquet');
CREATE OR REPLACE VIEW train_metrics AS
SELECT * FROM (SELECT NULL::VARCHAR AS "adapter_id", NULL::INTEGER AS "step", NULL::DOUBLE AS "epoch", NULL::DOUBLE AS "loss", NULL::DOUBLE AS "learning_rate", NULL::BIGINT AS "tokens", NULL::DOUBLE AS "tokens_per_s", NULL::DOUBLE AS "elapsed_s", NULL::TIMESTAMP WITH TIME ZONE AS "created_at" LIMIT 0)
UNION ALL BY NAME
SELECT * EXCLUDE (filename)
FROM read_parquet(getvariable('store') || '/train_metrics/*/*.parquet', filename = true, hive_partitioning = false, union_by_name = true)
WHERE regexp_full_match(filename, '.*/train_metrics/adapter=[^/]+/part-[0-9a-f]{32}\.parquet');
CREATE OR REPLACE VIEW capability AS
SELECT * FROM (SELECT NULL::VARCHAR AS "run_id", NULL::VARCHAR AS "suite", NULL::VARCHAR AS "key", NULL::VARCHAR AS "prompt", NULL::VARCHAR AS "response", NULL::VARCHAR[] AS "instruction_ids", NULL::BOOLEAN[] AS "followed_strict", NULL::BOOLEAN[] AS "followed_loose", NULL::BOOLEAN AS "strict", NULL::BOOLEAN AS "loose", NULL::DOUBLE AS "kl_to_base", NULL::INTEGER AS "reply_tokens", NULL::INTEGER AS "max_tokens", NULL::TIMESTAMP WITH TIME ZONE AS "created_at" LIMIT 0)
UNION ALL BY NAME
SELECT * EXCLUDE (filename)
FROM read_parquet(getvariable('store') || '/capability/*/*/*.parquet', filename = true, hive_partitioning = false, union_by_name = true)
WHERE regexp_full_match(filename, '.*/capability/suite=[^/]+/run=[^/]+/data\.parquet');
CREATE OR REPLACE VIEW separability AS
SELECT * FROM (SELECT NULL::VARCHAR AS "probe_id", NULL::VARCHAR AS "model", NULL::VARCHAR AS "adapter", NULL::VARCHAR AS "datasets", NULL::VARCHAR AS "eval_datasets", NULL::INTEGER AS "layer", NULL::BOOLEAN AS "best", NULL::DOUBLE AS "penalty", NULL::DOUBLE AS "selection_separation", NULL::BIGINT AS "fit_prompts", NULL::BIGINT AS "harmful_prompts", NULL::BIGINT AS "benign_prompts", NULL::BIGINT AS "harmful_flagged", NULL::BIGINT AS "benign_flagged", NULL::DOUBLE AS "harmful_rate", NULL::DOUBLE AS "harmful_rate_low", NULL::DOUBLE AS "harmful_rate_high", NULL::DOUBLE AS "benign_rate", NULL::DOUBLE AS "benign_rate_low", NULL::DOUBLE AS "benign_rate_high", NULL::DOUBLE AS "separation", NULL::DOUBLE AS "separation_low", NULL::DOUBLE AS "separation_high", NULL::TIMESTAMP WITH TIME ZONE AS "created_at" LIMIT 0)
UNION ALL BY NAME
SELECT * EXCLUDE (filename)
FROM read_parquet(getvariable('store') || '/separability/*/*.parquet', filename = true, hive_partitioning = false, union_by_name = true)
WHERE regexp_full_match(filename, '.*/separability/probe=[^/]+/data\.parquet');
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

CREATE OR REPLACE MACRO templates_of(name) AS TABLE
SELECT * FROM templates WHERE labeler = name AND name <> 'best'
UNION ALL
SELECT * EXCLUDE (preference) FROM (
    SELECT *, dense_rank() OVER (PARTITION BY run_id
                                 ORDER BY list_position(['best', 'ngram', 'hybrid', 'rules'], labeler)) AS preference
    FROM templates
    WHERE name = 'best' AND labeler IN ('best', 'ngram', 'hybrid', 'rules'))
WHERE preference = 1;
