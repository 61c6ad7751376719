"""The study's report: one self-contained HTML page and its Markdown twin.

The page carries the comparison table, what boundary rows do (when a method's run without
them, M-no-boundary, is compared too), the figures of `figures` (matplotlib) as inline SVG
(refusal under attack too, when the runs answered attacked prompts), the top refusal
openings per run and the runs. Tables are built from the comparison's numbers
(`evaluate.comparison_cells`), so an estimate and its interval are laid out separately
in HTML and as `value [low,high]` in Markdown. The Markdown version links the same figures
as .svg files written next to it; with `figures_dir`, each is also written as PNG and PDF
at print size for a paper.
"""

from __future__ import annotations

import contextlib
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from refusaldata import io
from refusaldata.claims import MARGIN, ceiling_sentences, seed_claims
from refusaldata.errors import InputError, NotFoundError, redact
from refusaldata.escape import markdown_text
from refusaldata.evaluate import (
    CORPUS, PLAIN, Estimate, attack_cells, boundary_cells, boundary_effects, boundary_sentence, compare_attacks,
    compare_runs, comparison_cells, comparison_settings, default_runs, model_cells, resolve_runs, top_openings,
)
from refusaldata.figures import Chart, attacks_chart, rates_chart, tradeoff_chart, uniformity_chart
from refusaldata.separability import best_row as best_separability
from refusaldata.store import Store

PRINT_FORMATS = ("png", "pdf")


def _text(value: object) -> str:
    return html.escape(str(value), quote=True)


Columns = dict[str, list]


def _html_cell(value: object) -> str:
    """A table cell; an estimate's interval goes under its value."""
    if value is None or isinstance(value, Estimate) and value.value is None:
        return "<td>—</td>"
    if isinstance(value, Estimate):
        interval = value.interval_text()
        below = f'<br><span class="ci">{_text(interval)}</span>' if interval else ""
        return f'<td class="num">{_text(value.value_text())}{below}</td>'
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f'<td class="num">{_text(value)}</td>'
    return f"<td>{_text(value)}</td>"


def _html_table(columns: Columns) -> str:
    head = "".join(f"<th>{_text(name)}</th>" for name in columns)
    body = "".join(f"<tr>{''.join(_html_cell(value) for value in row)}</tr>" for row in zip(*columns.values()))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _markdown_cell(value: object) -> str:
    """A table cell: text (names, openings: untrusted) through `markdown_text`; our own numbers as they print."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return markdown_text(value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def _markdown_table(columns: Columns) -> str:
    lines = ["| " + " | ".join(markdown_text(name) for name in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_markdown_cell(v) for v in row) + " |" for row in zip(*columns.values())]
    return "\n".join(lines)


def _openings_table(openings: pa.Table, comparison: pa.Table, who: str = "method") -> Columns:
    """Top openings with the run's name (column `who`) in front, in the comparison's run order."""
    methods = dict(zip(comparison.column("run_id").to_pylist(), comparison.column("method").to_pylist()))
    order = {run_id: index for index, run_id in enumerate(methods)}
    rows = sorted(openings.to_pylist(), key=lambda row: (order[row["run_id"]], row["rank"]))
    return {who: [methods[row["run_id"]] for row in rows], "rank": [row["rank"] for row in rows],
            "opening": [row["opening"] for row in rows], "refusals": [row["refusals"] for row in rows],
            "share": [Estimate(row["share"]) for row in rows]}


def _runs_table(comparison: pa.Table, corpus: bool) -> Columns:
    if corpus:
        columns = comparison.select(["method", "run_id", "model", "harmful_prompts", "harmful_responses",
                                     "refusals", "benign_prompts", "benign_responses"]).to_pydict()
        return {"run" if name == "method" else name: values for name, values in columns.items()}
    return comparison.select(["method", "run_id", "model", "adapter", "harmful_prompts", "harmful_responses",
                              "benign_prompts", "benign_responses", "paired_harmful", "paired_benign"]).to_pydict()


_STYLE = """
body { font-family: Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1200px; color: #222;
       padding: 0 16px; }
h1 { font-size: 24px; } h2 { font-size: 19px; margin-top: 32px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 16px 0; overflow-x: auto; } figcaption { font-size: 13px; color: #555; max-width: 760px; }
.settings { color: #555; font-size: 13px; } .ci { color: #666; font-size: 12px; white-space: nowrap; }
"""


@dataclass(frozen=True)
class Figure:
    """One chart of the page: a section with its SVG inline (and as FILE-<key>.svg for the Markdown)."""

    key: str
    heading: str
    alt: str
    chart: Chart
    caption: str
    table: Columns | None = None  # the chart's numbers, shown under it
    svg: str = ""

    def __post_init__(self) -> None:
        if not self.svg:
            object.__setattr__(self, "svg", self.chart.svg())


UNIFORMITY_CAPTION = ("Each point is a run: its refusal rate on harmful prompts against how uniform its refusal "
                      "openings are (1 when all refusals open alike, 0 when all differ). Whiskers: 95% bootstrap "
                      "intervals on both axes.")
ATTACKS_CAPTION = ("Refusal rate on harmful prompts per attack, one bar per method; '(none)' are the unattacked "
                   "prompts. Under the chart, Δ vs plain is each attack's refusal rate minus that of the same "
                   "run on the unattacked source prompts, paired (negative: the attack breaks refusals).")
TRADEOFF_CAPTION = ("Left: each method's refusal rate on harmful prompts against its over-refusal on benign "
                    "look-alikes; the shaded corner is the target (refusal >= 0.90, over-refusal <= 0.15). Right: "
                    "capability, the share of instruction-following prompts whose every instruction was followed "
                    "(IFEval's checkers); the dashed line is the first run, the band what stays within 0.05 of it. "
                    "Whiskers: 95% bootstrap intervals.")
TRADEOFF_SEPARABILITY = (" The dashed purple line is the separability ceiling (`evaluate separability`): a linear "
                         "probe on layer {layer} of {model}'s last prompt token, fitted on train prompts, flags "
                         "{harmful_rate:.2f} of the held-out harmful prompts and {benign_rate:.2f} of the benign "
                         "ones (the x); on the line, refusal exceeds over-refusal by its {separation:.2f}.")
TRADEOFF_ARROWS = (" Arrows go from each method trained without boundary rows (M-no-boundary) to the same "
                   "method trained with them.")
BOUNDARY_TEXT = ("Each method trained with boundary rows (benign look-alikes with compliant answers) against the "
                 "same method trained without them (M-no-boundary), on the prompts both runs answered: Δ is with "
                 "minus without, its 95% interval from a paired bootstrap (each resample draws the same prompts "
                 "for both runs).")
RATES_CAPTION = ("Refusal rate on harmful prompts and over-refusal on benign ones per method; dashed lines mark "
                 "the reference run (before), bars each method (after).")
CORPUS_RATES_CAPTION = ("Refusal rate on harmful prompts per run{benign}; whiskers: 95% bootstrap intervals over "
                        "prompts. A run with no such prompt has no bar; n, where shown: its responses to harmful "
                        "prompts.")
CORPUS_ATTACKS_CAPTION = ("Refusal rate on harmful prompts per attack, one bar per run; '(none)' are the unattacked "
                          "prompts.")
MODELS_TEXT = ("Each model's runs pooled: refused / labelled responses to harmful prompts, with a 95% Wilson "
               "interval (responses counted as independent).")


CLAIMS_TEXT = ("What the runs say about the seed papers' claims (arXiv 2406.11285: self- and cross-model "
               "distillation for refusal pattern alignment; arXiv 2409.07772: preference optimization for "
               "safety). Each check is a difference on the prompts both runs answered, with a 95% interval of a "
               "paired bootstrap, read in the direction the claim gives it: reproduced when the interval lies "
               "wholly that way, not reproduced when it rules out an effect of {margin} that way, inconclusive "
               "otherwise; a claim is reproduced when every check is, not reproduced when one is not. Uniformity "
               "is 1 − H/log n over the openings of the refusals to harmful prompts; top-template share, the "
               "share of them in the run's largest refusal template (`mine templates`).")
CEILING_TEXT = ("Each method's refusal − over-refusal, with Newcombe's 95% interval (from Wilson intervals, "
                "responses counted as independent), against the separation of the separability probe (layer "
                "{layer} of {model}, `evaluate separability`): below the ceiling where its interval lies under "
                "the probe's, above it where it lies over.")
NO_CEILING_TEXT = ("No separability ceiling is stored for {model}: `refusaldata evaluate separability --model "
                   "MODEL` measures how far a recipe could go on it.")


@dataclass(frozen=True)
class Section:
    """A section of sentences: a heading, a paragraph, one list item per sentence and a table."""

    heading: str
    text: str
    items: Sequence[str] = ()
    table: Columns | None = None

    def html(self) -> str:
        items = "".join(f"<li>{_text(item)}</li>" for item in self.items)
        return (f"<h2>{_text(self.heading)}</h2>\n<p>{_text(self.text)}</p>\n"
                + (f"<ul>{items}</ul>\n" if items else "") + (f"{_html_table(self.table)}\n" if self.table else ""))

    def markdown(self) -> list[str]:
        return [f"## {markdown_text(self.heading)}", markdown_text(self.text),
                *(["\n".join(f"- {markdown_text(item)}" for item in self.items)] if self.items else []),
                *([_markdown_table(self.table)] if self.table else [])]


def study_sections(store: Store, comparison: pa.Table, ceiling: dict | None) -> list[Section]:
    """The seed papers' claims and each method against the separability ceiling, for a study."""
    found = seed_claims(store, comparison)
    sections = [Section("The seed papers' claims", CLAIMS_TEXT.format(margin=MARGIN),
                        [claim.sentence() for claim in found.claims], found.pattern)]
    model = comparison.column("model")[0].as_py()
    if ceiling is None:
        sections.append(Section("Against the separability ceiling", NO_CEILING_TEXT.format(model=model)))
    else:
        sections.append(Section("Against the separability ceiling", CEILING_TEXT.format(**ceiling),
                                ceiling_sentences(comparison, ceiling)))
    return sections


def _figure_file(stem: str, figure: Figure, fmt: str = "svg") -> str:
    return f"{stem}-{figure.key}.{fmt}"


def render(comparison: pa.Table, openings: pa.Table, figures: Sequence[Figure], stem: str,
           boundary: pa.Table | None = None, sections: Sequence[Section] = ()) -> tuple[str, str]:
    """The HTML page and the Markdown text for one comparison; the Markdown links FILE-<key>.svg.
    `boundary` (`evaluate.boundary_effects`), when it has rows, gets its section after the
    comparison; `sections` (`study_sections`) come after it."""
    meta = comparison_settings(comparison)
    corpus = meta.get("mode") == CORPUS
    prompts = "Every prompt" if meta.get("split") == "all" else f"Prompts of split '{meta.get('split')}'"
    reference = meta.get("reference")
    if reference:
        name = comparison.column("method")[comparison.column("run_id").to_pylist().index(reference)].as_py()
        against = (f"differences (Δ) are to the {'reference' if corpus else 'first'} run, '{name}', paired where "
                   "both runs answered the same prompts.")
    else:
        against = "no run is a reference, so no differences are shown."
    settings = (f"{prompts}, refusal labeler '{meta.get('labeler')}', openings of k = {meta.get('k')} words, 95% "
                f"percentile bootstrap intervals over prompts (B = {meta.get('bootstrap')}, seed {meta.get('seed')}); "
                f"{against}" + (" A run too small for a statistic shows its n and —." if corpus else "")
                + (f" Unsafe verdicts from '{meta['unsafe_labeler']}'." if meta.get("unsafe_labeler") else ""))
    title = (f"Refusal patterns: a corpus of {comparison.num_rows} runs" if corpus
             else "Refusal patterns: comparison of methods")
    table = comparison_cells(comparison)
    openings_table = _openings_table(openings, comparison, "run" if corpus else "method")
    runs_table = _runs_table(comparison, corpus)
    models = model_cells(comparison) if corpus else None
    model_parts: list[str] = []
    html_models = ""
    if models is not None and len(models["model"]) < comparison.num_rows:
        model_parts = ["## Per model", MODELS_TEXT, _markdown_table(models)]
        html_models = f"<h2>Per model</h2>\n<p>{_text(MODELS_TEXT)}</p>\n{_html_table(models)}\n"
    boundary_parts: list[str] = []
    html_boundary = ""
    if boundary is not None and boundary.num_rows:
        boundary_table, sentence = boundary_cells(boundary), boundary_sentence(boundary)
        boundary_parts = ["## Boundary rows", markdown_text(f"{BOUNDARY_TEXT} {sentence}"),
                          _markdown_table(boundary_table)]
        html_boundary = (f"<h2>Boundary rows</h2>\n<p>{_text(BOUNDARY_TEXT)} {_text(sentence)}</p>\n"
                         f"{_html_table(boundary_table)}\n")
    html_sections = "".join(section.html() for section in sections)
    html_figures = "".join(f"""<h2>{_text(figure.heading)}</h2>
<figure>
{figure.svg}
<figcaption>{_text(figure.caption)}</figcaption>
</figure>
{_html_table(figure.table) if figure.table else ""}
""" for figure in figures)
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>refusaldata report</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>{_text(title)}</h1>
<p class="settings">{_text(settings)}</p>
<h2>{"Per run" if corpus else "Comparison"}</h2>
{_html_table(table)}
{html_models}{html_boundary}{html_sections}{html_figures}<h2>Top refusal openings per run</h2>
{_html_table(openings_table)}
<h2>Runs</h2>
{_html_table(runs_table)}
</body>
</html>
"""
    markdown_figures = [part for figure in figures for part in (
        f"## {markdown_text(figure.heading)}", f"![{markdown_text(figure.alt)}]({_figure_file(stem, figure)})",
        markdown_text(figure.caption),
        *([_markdown_table(figure.table)] if figure.table else []))]
    markdown = "\n\n".join([
        f"# {title}",
        markdown_text(settings),
        "## Per run" if corpus else "## Comparison",
        _markdown_table(table),
        *model_parts,
        *boundary_parts,
        *(part for section in sections for part in section.markdown()),
        *markdown_figures,
        "## Top refusal openings per run",
        _markdown_table(openings_table),
        "## Runs",
        _markdown_table(runs_table),
    ]) + "\n"
    return page, markdown


def write_report(store: Store, runs: Sequence[str] | None = None, out_html: str | Path = "report.html", *,
                 labeler: str = "rules", k: int = 5, bootstrap: int = 1000, seed: int = 0,
                 split: str | None = None, unsafe_labeler: str | None = None, top: int = 5,
                 capability_suite: str = "embedded", figures_dir: str | Path | None = None,
                 reference: str | None = None) -> tuple[Path, Path]:
    """Write the report to `out_html` and FILE.md (charts also as FILE-*.svg); return both paths.

    `runs` (names, ids, prefixes or globs) defaults to every labelled run, the study's methods
    first in their order. A study's first run is the reference of every difference and its
    test split counts; a corpus (see `evaluate.comparison_mode`) counts every prompt, is worded
    per run, per model and per attack, and has differences only to a `reference` run. Each
    method whose run without boundary rows (M-no-boundary) is among the runs gets a row in a
    "Boundary rows" section: the paired effect of those rows (`evaluate.boundary_effects`).
    The trade-off chart appears when some run's capability was evaluated on
    `capability_suite`. With `figures_dir`, every figure is also written there as
    FILE-<key>.png and FILE-<key>.pdf, at print size.
    """
    out_html = Path(out_html)
    if out_html.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"--out {out_html}: the report is HTML; give a FILE.html")
    figures_dir = None if figures_dir is None else Path(figures_dir)
    if figures_dir is not None and figures_dir.exists() and not figures_dir.is_dir():
        raise InputError(f"--figures {figures_dir}: is a file; give a folder for the PNG and PDF figures")
    if runs is None:
        runs = default_runs(store, labeler)
        if not runs:
            raise NotFoundError(f"no run in {store.root} has labels from '{labeler}'; run `refusaldata label` first")
    run_ids = resolve_runs(store, runs)
    comparison = compare_runs(store, run_ids, labeler=labeler, k=k, bootstrap=bootstrap, seed=seed, split=split,
                              unsafe_labeler=unsafe_labeler, capability_suite=capability_suite, reference=reference)
    run_ids = comparison.column("run_id").to_pylist()
    settings = comparison_settings(comparison)
    split, corpus = settings["split"], settings["mode"] == CORPUS
    openings = top_openings(store, run_ids, labeler=labeler, k=k, split=split, top=top)
    if corpus:
        benign = " and over-refusal on benign ones" if any(comparison.column("benign_responses").to_pylist()) else ""
        rates = Figure("rates", "Refusal per run", "Refusal rate per run", rates_chart(comparison),
                       CORPUS_RATES_CAPTION.format(benign=benign))
    else:
        rates = Figure("rates", "Before and after, per method", "Refusal and over-refusal per method",
                       rates_chart(comparison), RATES_CAPTION)
    figures = [
        Figure("uniformity", "Refusal rate against uniformity", "Refusal rate against uniformity",
               uniformity_chart(comparison, k), UNIFORMITY_CAPTION),
        rates,
    ]
    by_attack = compare_attacks(store, run_ids, labeler=labeler, bootstrap=bootstrap, seed=seed, split=split)
    if any(attack != PLAIN for attack in by_attack.column("attack").to_pylist()):
        figures.append(Figure("attacks", "Refusal per attack" if corpus else "Refusal under attack",
                              "Refusal per attack and run" if corpus else "Refusal per attack and method",
                              attacks_chart(by_attack), CORPUS_ATTACKS_CAPTION if corpus else ATTACKS_CAPTION,
                              attack_cells(by_attack)))
    boundary = boundary_effects(store, run_ids, labeler=labeler, bootstrap=bootstrap, seed=seed, split=split,
                                capability_suite=capability_suite)
    ceiling = None if corpus else best_separability(store, comparison.column("model")[0].as_py())
    if any(value is not None for value in comparison.column("capability").to_pylist()):
        figures.append(Figure("tradeoff", "The trade-off: refusal, over-refusal and capability",
                              "Refusal, over-refusal and capability per method", tradeoff_chart(comparison, ceiling),
                              TRADEOFF_CAPTION + (TRADEOFF_ARROWS if boundary.num_rows else "")
                              + (TRADEOFF_SEPARABILITY.format(**ceiling) if ceiling else "")))
    sections = [] if corpus else study_sections(store, comparison, ceiling)
    page, markdown = render(comparison, openings, figures, out_html.stem, boundary, sections)
    md_path = out_html.with_suffix(".md")
    files: list[tuple[Path, str | bytes]] = [(out_html.with_name(_figure_file(out_html.stem, figure)), figure.svg)
                                             for figure in figures]
    if figures_dir is not None:
        files += [(figures_dir / _figure_file(out_html.stem, figure, fmt), figure.chart.image(fmt))
                  for figure in figures for fmt in PRINT_FORMATS]
    for folder in dict.fromkeys([out_html.parent, *([figures_dir] if figures_dir is not None else [])]):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot write the report to {folder}: {exc.strerror}") from None
    # Every file is written to a temp file first and renamed (the page last) only when all
    # are written, so a failure leaves the previous report whole.
    with contextlib.ExitStack() as staged:
        for path, text in [(out_html, redact(page)), (md_path, redact(markdown)), *files]:
            inside = not store.remote and io.under_root(path, store.root)  # quickstart's report: as the store writes
            temp = staged.enter_context(io.atomic_path(path, InputError, within=store.root if inside else None))
            try:
                if isinstance(text, bytes):
                    temp.write_bytes(text)
                else:
                    temp.write_text(text + ("" if text.endswith("\n") else "\n"), encoding="utf-8")
            except OSError as exc:
                raise InputError(f"cannot write {path}: {exc.strerror}") from None
    return out_html, md_path
