"""The labelled responses the refusal labelers are trained and scored on, one frame per source.

Every row: source, prompt, response, refusal (bool), verdict (compliance | refusal |
partial, where the source says which; else from refusal), label ('human': a person
judged this response's refusal; 'weak': the label follows from the source's own labels
or from how the response was made). Sources:

human
- xstest_v1: XSTest v1 completions of Llama-2-70b-chat (CC-BY-4.0), 200 safe prompts;
  final_label full compliance / full refusal / partial refusal.
- pyrit_refusal, pyrit_refusal_extra, pyrit_mini_refusal: PyRIT's human-scored refusal
  sets (MIT); 1 = refuses the objective, which includes an off-topic answer.
weak
- jbb_judged: JailbreakBench's classifier comparison rows the human majority judged
  jailbroken (see below).
- gptfuzz: GPTFuzz responses labelled jailbroken, question as prompt (see below).
- jbb_artifacts: JailbreakBench attack artifacts judged jailbroken (see below).
- uncensorbench: the package's 150 prompts with a reference refusal (refusal) and a
  reference compliant answer (compliance), labelled by construction.
- smollm2: answers the embedded SmolLM2-135M-Instruct writes to harmful and benign
  prompts without a safety context (compliance: the 135M model answers nearly
  everything) and with one (refusal: the request wrapped in an instruction to decline
  it, SAFETY_CONTEXT). Generated with refusaldata's own `generate` into a temporary
  store and cached under bench/out/; weak because a 135M model does not always do as
  told (the bench's ablation shows what the source adds).

Sources that say only "jailbroken or not" give their jailbroken rows only ("not
jailbroken" may be a refusal or a harmless answer). A jailbroken response is not a full
refusal, but many open with one and then comply (GPTFuzz's two-persona answers: "I'm
sorry, but I can't ... OPPO: here is how"), which XSTest's scheme calls a partial
refusal. So a jailbroken row is weak `partial` (refusal = true) when the rule labeler
finds a refusal phrase in its head, else weak `compliance`.
Nothing here ships: the package carries the trained model, not the data.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

from refusaldata.io import read_records

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "out"
SMOLLM2_CACHE = "smollm2_answers.parquet"
SMOLLM2_PER_SIDE = 60
"""Harmful and benign prompts each answered with and without the safety context (240 answers)."""
SAFETY_CONTEXT = "I will not answer this request. {prompt}\nExplain why you won't help, without answering."
DONOTANSWER_MODELS = ("GPT4", "ChatGPT", "Claude", "llama2-7b-chat", "vicuna-7b", "ChatGLM2")
FRONTIER_MODELS = {"gpt-5.1-2025-11-13": "frontier_gpt51", "claude-sonnet-4-5-20250929": "frontier_claude45"}
HYBRID_HUMAN_SETS = ("xstest_v1", "pyrit_refusal", "pyrit_refusal_extra", "pyrit_mini_refusal")
HUMAN_SETS = (*HYBRID_HUMAN_SETS, *(f"dna_{model}" for model in DONOTANSWER_MODELS))
WEAK_SETS = (*FRONTIER_MODELS.values(), "jbb_judged", "gptfuzz", "jbb_artifacts", "uncensorbench", "smollm2")
DNA_SCORED_ACTIONS = ("0", "2", "5")
"""Do-Not-Answer's unambiguous categories, the only ones a Do-Not-Answer fold is scored on:
0 declines (refusal), 2 offers both sides and 5 follows the instruction (compliance)."""
DNA_SCHEMES = {
    "xstest": {"0": "refusal", "1": "refusal", "2": "compliance", "3": "compliance", "4": "refusal",
               "5": "compliance"},
    "partial": {"0": "refusal", "1": "partial", "2": "compliance", "3": "compliance", "4": "partial",
                "5": "compliance"},
    "clear": {"0": "refusal", "2": "compliance", "5": "compliance"},
}
"""How Do-Not-Answer's action categories train, a choice made by leave-one-source-out
(bench/detector_accuracy.py --encoder): `xstest` reads a rebuttal of the premise (1) and an
"as an AI I cannot" (4) as refusals and a cautious answer (3) as compliance, XSTest's
scheme; `partial` calls 1 and 4 partial; `clear` trains on 0, 2 and 5 only."""
FRONTIER_VERDICTS = {"0": "compliance", "1": "refusal", "2": "partial"}
COLUMNS = ("source", "prompt", "response", "refusal", "verdict", "label")
XSTEST_VERDICTS = {"1_full_compliance": "compliance", "2_full_refusal": "refusal", "3_partial_refusal": "partial"}


def _csv(path: Path) -> pl.DataFrame:
    """A CSV through the toolkit's one reader (`#` lines above the header skipped, all columns strings)."""
    return read_records(path, "csv")


def _finish(frame: pl.DataFrame, source: str, label: str) -> pl.DataFrame:
    """The frame in COLUMNS, verdict filled from refusal where the source gives none, empty texts dropped."""
    if "verdict" not in frame.columns:
        frame = frame.with_columns(pl.when(pl.col("refusal")).then(pl.lit("refusal"))
                                   .otherwise(pl.lit("compliance")).alias("verdict"))
    return (frame.with_columns(pl.lit(source).alias("source"), pl.lit(label).alias("label"))
            .filter(pl.col("response").is_not_null() & (pl.col("response").str.strip_chars() != ""))
            .select(*COLUMNS))


def human_sets(data: Path = DATA, wide: bool = True) -> dict[str, pl.DataFrame]:
    """The human-labelled refusal sets under data/labelled that are present (without `wide`,
    the four the hybrid labeler was tuned on: no Do-Not-Answer model)."""
    sets = {}
    xstest = data / "labelled/xstest_v1/xstest_completions_llama2_v1.csv"
    if xstest.is_file():
        sets["xstest_v1"] = _finish(_csv(xstest).select(
            "prompt", pl.col("completion").alias("response"),
            pl.col("final_label").replace_strict(XSTEST_VERDICTS).alias("verdict"),
            (pl.col("final_label") != "1_full_compliance").alias("refusal")), "xstest_v1", "human")
    for name in ("refusal", "refusal_extra", "mini_refusal"):
        path = data / f"labelled/pyrit_refusal/{name}.csv"
        if path.is_file():
            sets[f"pyrit_{name}"] = _finish(_csv(path).select(
                pl.col("objective").alias("prompt"), pl.col("assistant_response").alias("response"),
                (pl.col("human_score").str.strip_chars() == "1").alias("refusal")), f"pyrit_{name}", "human")
    for model in DONOTANSWER_MODELS if wide else ():
        frame = donotanswer(model, data)
        if frame is not None:
            sets[f"dna_{model}"] = frame.select(*COLUMNS)
    return sets


def donotanswer(model: str, data: Path = DATA, scheme: str = "xstest") -> pl.DataFrame | None:
    """One Do-Not-Answer model's human-labelled answers, its action category kept in `action`.

    Categories the scheme leaves out are dropped."""
    path = data / f"labelled/donotanswer/annotated_response_{model}.csv"
    if not path.is_file():
        return None
    verdicts = DNA_SCHEMES[scheme]
    frame = (_csv(path).with_columns(pl.col("action").str.strip_chars())
             .filter(pl.col("action").is_in(list(verdicts)))
             .select(pl.col("question").alias("prompt"), "response", "action",
                     pl.col("action").replace_strict(verdicts).alias("verdict")))
    frame = frame.with_columns((pl.col("verdict") != "compliance").alias("refusal"))
    finished = _finish(frame, f"dna_{model}", "human")
    kept = frame.filter(pl.col("response").is_not_null() & (pl.col("response").str.strip_chars() != ""))
    return finished.with_columns(kept["action"])


def frontier(data: Path = DATA) -> dict[str, pl.DataFrame]:
    """GPT-5.1's and Claude Sonnet 4.5's answers with a GPT-4o judge's none / hard / soft refusal labels
    (weak): compliance, refusal, partial. One source per model."""
    path = data / "labelled/frontier_refusal/val.csv"
    if not path.is_file():
        return {}
    frame = _csv(path).with_columns(pl.col("refusal_label").str.strip_chars().replace_strict(FRONTIER_VERDICTS)
                                    .alias("verdict"))
    frame = frame.with_columns((pl.col("verdict") != "compliance").alias("refusal"))
    return {source: _finish(frame.filter(pl.col("model") == model).select("prompt", "response", "verdict",
                                                                            "refusal"), source, "weak")
            for model, source in FRONTIER_MODELS.items()}


def _jailbroken(frame: pl.DataFrame, source: str) -> pl.DataFrame:
    """Jailbroken (prompt, response) rows as weak labels: partial where the rules find a refusal phrase,
    else compliance."""
    from refusaldata.labelers.learned_refusal import rule_facts

    marked = pl.Series(rule_facts(frame["response"].to_list()).column("refusal").to_pylist(), dtype=pl.Boolean)
    frame = frame.with_columns(marked.alias("refusal"))
    return _finish(frame.with_columns(pl.when(pl.col("refusal")).then(pl.lit("partial"))
                                      .otherwise(pl.lit("compliance")).alias("verdict")), source, "weak")


def jbb_judged(data: Path = DATA) -> pl.DataFrame | None:
    path = data / "labelled/jbb_classifier_comparison/classifier_comparison.csv"
    if not path.is_file():
        return None
    rows = pl.read_csv(path, infer_schema=False).filter(pl.col("human_majority") == "1")
    return _jailbroken(rows.select(pl.col("goal").alias("prompt"), pl.col("target_response").alias("response")),
                       "jbb_judged")


def gptfuzz(data: Path = DATA) -> pl.DataFrame | None:
    folder = data / "labelled/gptfuzz"
    if not (folder / "train.csv").is_file():
        return None
    questions = pl.read_csv(folder / "question_list.csv").rename({"index": "question", "text": "prompt"})
    rows = pl.read_csv(folder / "train.csv").filter(pl.col("label") == 1).join(questions, on="question")
    return _jailbroken(rows.select("prompt", pl.col("Response").alias("response")), "gptfuzz")


def jbb_artifacts(data: Path = DATA) -> pl.DataFrame | None:
    folder = data / "corpora/jbb_artifacts/attack-artifacts"
    rows = []
    for path in sorted(folder.glob("*/*/*.json")):
        for item in json.loads(path.read_text(encoding="utf-8")).get("jailbreaks", []):
            if item.get("jailbroken") and item.get("response"):
                rows.append({"prompt": item["goal"], "response": item["response"]})
    if not rows:
        return None
    return _jailbroken(pl.DataFrame(rows), "jbb_artifacts")


def uncensorbench() -> pl.DataFrame:
    """uncensorbench's prompts, each with its reference refusal and its reference compliant answer."""
    from refusaldata.fetch import package_data
    from refusaldata.registry import BUILTINS

    frame = read_records(package_data(BUILTINS["uncensorbench"].location), "json", records_key="prompts")
    return _finish(pl.concat([
        frame.select("prompt", pl.col("censored_response").alias("response"), pl.lit(True).alias("refusal")),
        frame.select("prompt", pl.col("uncensored_response").alias("response"), pl.lit(False).alias("refusal")),
    ]), "uncensorbench", "weak")


def smollm2_prompts(data: Path = DATA) -> pl.DataFrame:
    """SMOLLM2_PER_SIDE harmful (SimpleSafetyTests) and benign (CoCoNot contrast) prompts, seeded sample.

    Neither set is a labelled source here, so no evaluated prompt is answered.
    """
    harmful = pl.read_csv(data / "prompts/simplesafetytests/sst_test_cases.csv").select(
        pl.col("prompts_final").alias("prompt"))
    benign = pl.read_ndjson(data / "prompts/coconot/coconot_contrast_eval.jsonl").select("prompt")
    return pl.concat([harmful.sample(SMOLLM2_PER_SIDE, seed=0).with_columns(pl.lit(True).alias("harmful")),
                      benign.sample(SMOLLM2_PER_SIDE, seed=0).with_columns(pl.lit(False).alias("harmful"))])


def generate_smollm2(path: Path, data: Path = DATA) -> None:
    """Answer smollm2_prompts() with SmolLM2 (greedy, 96 tokens) with and without SAFETY_CONTEXT; write `path`."""
    from refusaldata.generate import GenerateOptions, generate
    from refusaldata.prompts import import_file
    from refusaldata.store import Store

    prompts = smollm2_prompts(data)
    framed = prompts.with_columns(pl.col("prompt").map_elements(
        lambda text: SAFETY_CONTEXT.format(prompt=text), return_dtype=pl.String).alias("framed"))
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "store")
        plain_file, framed_file = Path(folder) / "plain.csv", Path(folder) / "framed.csv"
        prompts.select("prompt").write_csv(plain_file)
        framed.select(pl.col("framed").alias("prompt")).write_csv(framed_file)
        import_file(store, plain_file, "plain", "prompt")
        import_file(store, framed_file, "framed", "prompt")
        answers = {}
        for dataset in ("plain", "framed"):
            summary = generate(store, GenerateOptions(model="smollm2-135m-instruct", datasets=(dataset,),
                                                      max_tokens=96, name=f"smollm2-{dataset}"))
            con = store.connect(["prompts", "responses"])
            answers[dataset] = dict(con.sql(
                "SELECT p.text, r.response FROM responses r JOIN prompts p USING (prompt_id) "
                "WHERE r.run_id = $run", params={"run": summary.run_id}).fetchall())
            con.close()
    rows = [{"prompt": text, "response": answers["plain"].get(text), "refusal": False, "harmful": harmful}
            for text, harmful in prompts.select("prompt", "harmful").rows()]
    rows += [{"prompt": text, "response": answers["framed"].get(framed_text), "refusal": True, "harmful": harmful}
             for text, framed_text, harmful in framed.select("prompt", "framed", "harmful").rows()]
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows).write_parquet(path)


def smollm2(generate_missing: bool, out: Path = OUT, data: Path = DATA) -> tuple[pl.DataFrame | None, str]:
    """The cached SmolLM2 answers (generated first when missing and allowed), and what happened."""
    path = out / SMOLLM2_CACHE
    if not path.is_file():
        if not generate_missing:
            return None, f"skipped: no {path} (run with --generate to make it, ~10 min of CPU)"
        generate_smollm2(path, data)
    return _finish(pl.read_parquet(path).drop("harmful"), "smollm2", "weak"), f"read {path}"


def weak_sets(data: Path = DATA, generate_missing: bool = False,
              wide: bool = True) -> tuple[dict[str, pl.DataFrame], list[str]]:
    """The weak sources that are present, and one line per source about how it was found
    (without `wide`, those the hybrid labeler was tuned on: no frontier model)."""
    notes = []
    found = {**(frontier(data) if wide else {}), "jbb_judged": jbb_judged(data), "gptfuzz": gptfuzz(data),
             "jbb_artifacts": jbb_artifacts(data), "uncensorbench": uncensorbench()}
    found["smollm2"], note = smollm2(generate_missing, data=data)
    notes.append(f"smollm2: {note}")
    return {name: frame for name, frame in found.items() if frame is not None}, notes


def labelled_pool(scheme: str = "clear", generate_missing: bool = False,
                  data: Path = DATA) -> tuple[pl.DataFrame, list[str]]:
    """Every present source's rows (COLUMNS + `action`, Do-Not-Answer's category, null elsewhere)
    with Do-Not-Answer read by `scheme`, then the mismatched pairs of all compliant rows; and
    one note per weak source on how it was found."""
    frames = [frame.with_columns(pl.lit(None, pl.String).alias("action"))
              for name, frame in human_sets(data).items() if not name.startswith("dna_")]
    frames += [frame for model in DONOTANSWER_MODELS
               if (frame := donotanswer(model, data, scheme)) is not None]
    weak, notes = weak_sets(data, generate_missing)
    frames += [frame.with_columns(pl.lit(None, pl.String).alias("action")) for frame in weak.values()]
    pooled = pl.concat(frames)
    mismatched = mismatched_pairs(pooled.select(*COLUMNS)).with_columns(pl.lit(None, pl.String).alias("action"))
    return pl.concat([pooled, mismatched]), notes


def mismatched_pairs(frame: pl.DataFrame, seed: int = 0) -> pl.DataFrame:
    """Off-topic refusals (PyRIT's definition): each compliant row's prompt with another prompt's compliant answer.

    The answers are a random cyclic shift of the compliant rows, so every answer is used
    once; pairs that land on the same prompt text are dropped. Weak labels, source 'mismatched'.
    """
    compliant = frame.filter(~pl.col("refusal")).select("prompt", "response").unique(maintain_order=True)
    if compliant.height < 2:
        return frame.clear().select(*COLUMNS)
    order = np.random.default_rng(seed).permutation(compliant.height)
    shuffled = compliant[order]
    answers = shuffled.select(pl.col("prompt").shift(-1, fill_value=shuffled["prompt"][0]).alias("answered"),
                              pl.col("response").shift(-1, fill_value=shuffled["response"][0]))
    pairs = (shuffled.select("prompt").hstack(answers)
             .filter(pl.col("prompt") != pl.col("answered"))
             .select("prompt", "response", pl.lit(True).alias("refusal")))
    return _finish(pairs, "mismatched", "weak")
