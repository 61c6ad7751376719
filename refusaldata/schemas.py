"""Every table of the store, declared once: its Arrow schema, partition folders and key.

Files carry every column, partition columns included, so a file read on its own is
complete; the `name=value` folders exist for locality and for analysts' globs.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

TIMESTAMP = pa.timestamp("us", tz="UTC")


def _required(name: str, type_: pa.DataType) -> pa.Field:
    return pa.field(name, type_, nullable=False)


@dataclass(frozen=True)
class TableSpec:
    """How one table is laid out.

    partitions: (folder key, column) pairs, outermost first.
    key: the columns that identify a row; appends skip rows whose key is stored.
    replace: one file per partition, swapped atomically on rewrite (derived tables);
        otherwise rows are appended as new part files (raw tables).
    """

    name: str
    schema: pa.Schema
    partitions: tuple[tuple[str, str], ...]
    key: tuple[str, ...]
    replace: bool = False
    description: str = ""

    @property
    def columns(self) -> list[str]:
        return self.schema.names


PROMPTS = TableSpec(
    "prompts",
    pa.schema([
        _required("prompt_id", pa.string()),
        _required("dataset", pa.string()),
        pa.field("category", pa.string()),
        _required("text", pa.string()),
        _required("harmful", pa.bool_()),
        _required("split", pa.string()),
        pa.field("source_ref", pa.string()),
        pa.field("context", pa.string()),
        pa.field("imported_at", TIMESTAMP),
        # The attack that made this prompt from the one named in source_ref (NULL: unattacked).
        pa.field("attack", pa.string()),
    ]),
    partitions=(("dataset", "dataset"),),
    key=("dataset", "prompt_id"),
    description="Prompt sets: harmful requests and benign controls, one row per (dataset, prompt).",
)

RUNS = TableSpec(
    "runs",
    pa.schema([
        _required("run_id", pa.string()),
        pa.field("name", pa.string()),
        pa.field("model", pa.string()),
        pa.field("adapter", pa.string()),
        _required("backend", pa.string()),
        pa.field("system_prompt", pa.string()),
        pa.field("chat_template_sha", pa.string()),
        pa.field("dtype", pa.string()),
        pa.field("temperature", pa.float64()),
        pa.field("top_p", pa.float64()),
        pa.field("max_tokens", pa.int32()),
        pa.field("n", pa.int32()),
        pa.field("seed", pa.int64()),
        pa.field("prompts", pa.string()),
        pa.field("split", pa.string()),
        pa.field("config", pa.string()),
        pa.field("versions", pa.string()),
        pa.field("created_at", TIMESTAMP),
    ]),
    partitions=(),
    key=("run_id",),
    description="One row per generation or import run with its full config (JSON) and library versions.",
)

RESPONSES = TableSpec(
    "responses",
    pa.schema([
        _required("run_id", pa.string()),
        _required("prompt_id", pa.string()),
        _required("sample_index", pa.int32()),
        pa.field("response", pa.string()),
        pa.field("n_prompt_tokens", pa.int32()),
        pa.field("n_output_tokens", pa.int32()),
        pa.field("finish_reason", pa.string()),
        pa.field("created_at", TIMESTAMP),
        # What the source tool itself scored this response (Inspect scorers, garak detectors), JSON;
        # NULL for generated responses and the formats that carry no scores.
        pa.field("source_scores", pa.string()),
    ]),
    partitions=(("run", "run_id"),),
    key=("run_id", "prompt_id", "sample_index"),
    description="Model outputs keyed by (run_id, prompt_id, sample_index); finish_reason 'skipped' marks prompts "
                "too long to answer; source_scores: an imported tool's own scores (JSON).",
)

LABELS = TableSpec(
    "labels",
    pa.schema([
        _required("run_id", pa.string()),
        _required("prompt_id", pa.string()),
        _required("sample_index", pa.int32()),
        _required("labeler", pa.string()),
        pa.field("refusal", pa.bool_()),
        pa.field("score", pa.float64()),
        pa.field("marker", pa.string()),
        pa.field("opening", pa.string()),
        pa.field("unsafe", pa.bool_()),
        pa.field("categories", pa.string()),
        pa.field("raw", pa.string()),
        pa.field("created_at", TIMESTAMP),
        pa.field("verdict", pa.string()),
        pa.field("reviewer", pa.string()),
        pa.field("labeler_version", pa.string()),
    ]),
    partitions=(("labeler", "labeler"), ("run", "run_id")),
    key=("labeler", "run_id", "prompt_id", "sample_index"),
    replace=True,
    description="Verdicts on responses: verdict (compliance, refusal or partial; refusal = not compliance), "
                "score = P(refusal), the marker that fired and the normalized opening; from judges, unsafe; "
                "from people (labeler 'human'), who reviewed it; labeler_version: the labeler's version that wrote "
                "the row (`label` skips responses labelled at the current one; null in stores written before it).",
)

TEMPLATES = TableSpec(
    "templates",
    pa.schema([
        _required("run_id", pa.string()),
        _required("labeler", pa.string()),
        _required("k", pa.int32()),
        _required("template_id", pa.string()),
        pa.field("medoid", pa.string()),
        pa.field("support", pa.int64()),
        pa.field("share", pa.float64()),
        pa.field("openings", pa.list_(pa.string())),
        pa.field("created_at", TIMESTAMP),
    ]),
    partitions=(("labeler", "labeler"), ("run", "run_id"), ("k", "k")),
    key=("run_id", "labeler", "k", "template_id"),
    replace=True,
    description="Refusal templates: refusal openings clustered with rapidfuzz, with medoid text and support.",
)

SFT = TableSpec(
    "sft",
    pa.schema([
        _required("set_name", pa.string()),
        _required("mode", pa.string()),
        _required("kind", pa.string()),
        _required("prompt_id", pa.string()),
        _required("split", pa.string()),
        _required("prompt", pa.string()),
        _required("target", pa.string()),
        pa.field("student_run", pa.string()),
        pa.field("source_run", pa.string()),
        pa.field("template_id", pa.string()),
        pa.field("source_prompt_id", pa.string()),
        pa.field("source_sample_index", pa.int32()),
        pa.field("created_at", TIMESTAMP),
    ]),
    partitions=(("set", "set_name"),),
    key=("set_name", "kind", "prompt_id"),
    replace=True,
    description="Distillation SFT sets: a refusal target (or a retention or boundary answer) per prompt, with "
                "provenance.",
)

PAIRS = TableSpec(
    "pairs",
    pa.schema([
        _required("set_name", pa.string()),
        _required("mode", pa.string()),
        # refusal: chosen is a refusal target; boundary: chosen answers a benign look-alike (NULL: refusal).
        pa.field("kind", pa.string()),
        _required("prompt_id", pa.string()),
        _required("split", pa.string()),
        _required("prompt", pa.string()),
        _required("chosen", pa.string()),
        _required("rejected", pa.string()),
        pa.field("student_run", pa.string()),
        pa.field("source_run", pa.string()),
        pa.field("template_id", pa.string()),
        pa.field("source_prompt_id", pa.string()),
        pa.field("source_sample_index", pa.int32()),
        pa.field("rejected_sample_index", pa.int32()),
        pa.field("created_at", TIMESTAMP),
    ]),
    partitions=(("set", "set_name"),),
    key=("set_name", "prompt_id"),
    replace=True,
    description="Preference pairs: chosen = refusal target, rejected = the student's compliant answer (kind "
                "refusal); on benign look-alikes, chosen = a compliant answer, rejected = a refusal (kind boundary).",
)

ADAPTERS = TableSpec(
    "adapters",
    pa.schema([
        _required("adapter_id", pa.string()),
        _required("path", pa.string()),
        pa.field("base_model", pa.string()),
        pa.field("set_name", pa.string()),
        pa.field("loss", pa.string()),
        pa.field("config", pa.string()),
        pa.field("created_at", TIMESTAMP),
    ]),
    partitions=(),
    key=("adapter_id",),
    description="Trained PEFT adapters: where they are, their base model, set and hyperparameters (JSON).",
)

TRAIN_METRICS = TableSpec(
    "train_metrics",
    pa.schema([
        _required("adapter_id", pa.string()),
        _required("step", pa.int32()),
        pa.field("epoch", pa.float64()),
        pa.field("loss", pa.float64()),
        pa.field("learning_rate", pa.float64()),
        pa.field("tokens", pa.int64()),
        pa.field("tokens_per_s", pa.float64()),
        pa.field("elapsed_s", pa.float64()),
        pa.field("created_at", TIMESTAMP),
    ]),
    partitions=(("adapter", "adapter_id"),),
    key=("adapter_id", "step"),
    description="Per-step training metrics of each adapter.",
)

CAPABILITY = TableSpec(
    "capability",
    pa.schema([
        _required("run_id", pa.string()),
        _required("suite", pa.string()),
        _required("key", pa.string()),
        pa.field("prompt", pa.string()),
        pa.field("response", pa.string()),
        pa.field("instruction_ids", pa.list_(pa.string())),
        pa.field("followed_strict", pa.list_(pa.bool_())),
        pa.field("followed_loose", pa.list_(pa.bool_())),
        pa.field("strict", pa.bool_()),
        pa.field("loose", pa.bool_()),
        pa.field("kl_to_base", pa.float64()),
        pa.field("reply_tokens", pa.int32()),
        pa.field("max_tokens", pa.int32()),
        pa.field("created_at", TIMESTAMP),
    ]),
    partitions=(("suite", "suite"), ("run", "run_id")),
    key=("suite", "run_id", "key"),
    replace=True,
    description="Capability of a run's model: per instruction-following prompt, its answer, which verifiable "
                "instructions it followed (strict, loose) and the mean per-token KL from the base model.",
)

SEPARABILITY = TableSpec(
    "separability",
    pa.schema([
        _required("probe_id", pa.string()),
        pa.field("model", pa.string()),
        pa.field("adapter", pa.string()),
        pa.field("datasets", pa.string()),
        pa.field("eval_datasets", pa.string()),
        _required("layer", pa.int32()),
        pa.field("best", pa.bool_()),
        pa.field("penalty", pa.float64()),
        pa.field("selection_separation", pa.float64()),
        pa.field("fit_prompts", pa.int64()),
        pa.field("harmful_prompts", pa.int64()),
        pa.field("benign_prompts", pa.int64()),
        pa.field("harmful_flagged", pa.int64()),
        pa.field("benign_flagged", pa.int64()),
        pa.field("harmful_rate", pa.float64()),
        pa.field("harmful_rate_low", pa.float64()),
        pa.field("harmful_rate_high", pa.float64()),
        pa.field("benign_rate", pa.float64()),
        pa.field("benign_rate_low", pa.float64()),
        pa.field("benign_rate_high", pa.float64()),
        pa.field("separation", pa.float64()),
        pa.field("separation_low", pa.float64()),
        pa.field("separation_high", pa.float64()),
        pa.field("created_at", TIMESTAMP),
    ]),
    partitions=(("probe", "probe_id"),),
    key=("probe_id", "layer"),
    replace=True,
    description="Separability probes: per layer of a model, how a linear probe on the last prompt token's "
                "hidden state, fitted on train prompts, flags held-out harmful and benign prompts (Wilson "
                "intervals; separation = the difference, Newcombe interval); best: the layer chosen on held-out "
                "train prompts.",
)

TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (PROMPTS, RUNS, RESPONSES, LABELS, TEMPLATES, SFT, PAIRS, ADAPTERS, TRAIN_METRICS, CAPABILITY,
                 SEPARABILITY)
}
