"""The report's figures, drawn by matplotlib (Agg): inline SVG for the page, PNG and PDF for print.

1. refusal rate against uniformity of refusal openings per run, both with 95% bootstrap
   intervals: the study's central figure (uniform refusers refuse more);
2. refusal rate, over-refusal (and unsafe rate, when judged) per method as grouped bars
   with intervals, the reference run's levels drawn across as dashed lines (before/after);
3. refusal rate per attack and method as grouped bars with intervals (safety under attack);
4. the trade-off, when `evaluate capability` ran: refusal against over-refusal per
   method (the target corner shaded) beside each method's capability against the
   reference's, so a method that buys refusal with over-refusal or lost ability shows it;
   where a method's run without boundary rows (M-no-boundary) is there too, an arrow on
   each panel goes from it to the method's run with them.

Each figure is sized for print (a page's text width) and drawn once; its SVG, PNG and PDF
are renderings of the same figure, so they carry the same numbers and intervals. In the
SVG, text is drawn as paths (`svg.fonttype` 'path': no font is named or fetched), every
id is prefixed with the chart's id (several charts share one page) and the marks carry
classes (`point`, `bar`, `ci`, `reference`, `target`, `arrow`) and tooltips with their values.
"""

from __future__ import annotations

import contextlib
import html
import io
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import matplotlib
import pyarrow as pa
from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, Patch, Rectangle
from matplotlib.transforms import blended_transform_factory

from refusaldata.evaluate import boundary_pairs

# Tableau 10: distinguishable, and readable by most colour-blind viewers.
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
           "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")
MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*")
# Above this many runs a chart lists runs on rows (labels never overlap) and puts its legend
# under the axes, in as many columns as fit, so the axes keep their size however many runs.
MANY_RUNS = 10
ROW_INCHES = 0.2  # height per run in a chart of rows
SIDE_LABEL_CHARS = 16  # a legend of longer names beside the axes would squeeze them: it goes below
AXES_HEIGHT = 3.0  # inches of the scatter's axes when its legend goes below
TICKS = [i / 5 for i in range(6)]
LABEL_CHARS = 34  # longer run names are cut (the full name stays in each mark's tooltip)
WIDTH, HEIGHT = 6.5, 3.6  # inches: a page's text width
PNG_DPI = 300
MARK_CLASSES = ("point", "bar", "ci", "reference", "target", "arrow", "separability")
STYLE = {
    "svg.fonttype": "path", "svg.hashsalt": "refusaldata", "pdf.fonttype": 42, "font.family": "DejaVu Sans",
    "font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8, "legend.fontsize": 7, "xtick.labelsize": 7,
    "ytick.labelsize": 7, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "grid.color": "#e3e3e3", "grid.linewidth": 0.6, "axes.axisbelow": True,
}
WHISKERS = "whiskers: 95% bootstrap intervals"

# The issue's target: refusal >= 0.90, over-refusal <= 0.15, capability within 0.05 of the reference.
TARGET_REFUSAL, TARGET_OVER_REFUSAL, TARGET_CAPABILITY_DROP = 0.90, 0.15, 0.05
TARGET_COLOR = "#59a14f"
SEPARABILITY_COLOR = "#7b4ea3"  # the probe's ceiling on the trade-off chart


@contextlib.contextmanager
def _style() -> Iterator[None]:
    """The figures' rc settings, for drawing and for every save (svg.fonttype is read at save time)."""
    with matplotlib.rc_context(STYLE):
        yield


@dataclass
class Chart:
    """One drawn figure: its id in the page, title and the tooltip of each mark (by gid)."""

    chart_id: str
    title: str
    figure: Figure
    tooltips: dict[str, str] = field(default_factory=dict)
    _marks: dict[str, int] = field(default_factory=dict)

    def gid(self, kind: str, tooltip: str | None = None) -> str:
        """A fresh gid for a mark of `kind` (one of MARK_CLASSES), with its tooltip."""
        number = self._marks.get(kind, 0)
        self._marks[kind] = number + 1
        gid = f"{kind}-{number}"
        if tooltip:
            self.tooltips[gid] = tooltip
        return gid

    def svg(self) -> str:
        """The figure as one <svg> element fit to sit inline in a page beside others."""
        with _style():
            buffer = io.StringIO()
            self.figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
        text = buffer.getvalue()
        text = text[text.index("<svg"):]
        # The metadata, and the comments that repeat each label's text: a run name holding `-->`
        # would end its comment and put markup in the page.
        text = re.sub(r"<metadata>.*?</metadata>\s*|<!--.*?-->\s*", "", text, flags=re.S)
        prefix = f"{self.chart_id}-"
        text = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m[1]}"', text)
        text = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}{m[1]}"', text)
        text = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}{m[1]})", text)
        marks = "|".join(MARK_CLASSES)

        def mark(match: re.Match) -> str:
            gid = match[1]
            tooltip = self.tooltips.get(gid)
            title = f"<title>{html.escape(tooltip)}</title>" if tooltip else ""
            return f'<g id="{prefix}{gid}" class="{gid.rsplit("-", 1)[0]}">{title}'

        text = re.sub(rf'<g id="{re.escape(prefix)}((?:{marks})-\d+)">', mark, text)
        title = html.escape(self.title, quote=True)
        head_end = text.index(">") + 1
        head = text[:head_end].replace("<svg ", f'<svg id="{self.chart_id}" role="img" aria-label="{title}" ', 1)
        return f"{head}\n<title>{title}</title>{text[head_end:]}".rstrip() + "\n"

    def image(self, fmt: str) -> bytes:
        """The figure as PNG (at PNG_DPI) or PDF bytes, at its print size."""
        metadata = {"CreationDate": None} if fmt == "pdf" else {"Software": None}
        with _style():
            buffer = io.BytesIO()
            self.figure.savefig(buffer, format=fmt, dpi=PNG_DPI, metadata=metadata)
        return buffer.getvalue()


def _new(chart_id: str, title: str, width: float = WIDTH, height: float = HEIGHT, columns: int = 1,
         ratios: Sequence[float] | None = None) -> tuple[Chart, list]:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, columns, gridspec_kw={"width_ratios": ratios} if ratios else None, squeeze=False)[0]
    figure.suptitle(title, fontweight="bold")
    return Chart(chart_id, title, figure), list(axes)


def _short(label: str, head: int = (LABEL_CHARS - 1) * 2 // 5) -> str:
    """A run name cut to LABEL_CHARS in the middle, keeping `head` characters of its start: names
    of one corpus often share their start (jbb-prompt_with_random_search-black_box-...) and
    differ at the end."""
    if len(label) <= LABEL_CHARS:
        return label
    return label[:head] + "…" + label[-(LABEL_CHARS - 1 - head):]


def _crowded(names: Sequence[str]) -> bool:
    """Whether runs named so are too many, or too long-named, for bars in columns and a legend beside."""
    return len(names) > MANY_RUNS or max((len(name) for name in names), default=0) > SIDE_LABEL_CHARS


def short_names(labels: Sequence[str]) -> list[str]:
    """`_short` of each label, names that would then read alike cut elsewhere until they differ."""
    shown = [_short(label) for label in labels]
    for text in {text for text in shown if shown.count(text) > 1}:
        group = [index for index, other in enumerate(shown) if other == text]
        default = (LABEL_CHARS - 1) * 2 // 5
        for head in [*range(default - 1, 0, -1), *range(default + 1, LABEL_CHARS - 1)]:
            cut = [_short(labels[index], head) for index in group]
            if len(set(cut)) == len(cut):
                for index, name in zip(group, cut):
                    shown[index] = name
                break
    return shown


def _run_style(index: int) -> tuple[str, str]:
    """Colour and marker of the index-th run: ten colours, then the next marker shape (no pair
    repeats within len(PALETTE) x len(MARKERS) runs)."""
    return PALETTE[index % len(PALETTE)], MARKERS[(index // len(PALETTE)) % len(MARKERS)]


def run_styles(rows: Sequence[dict]) -> list[tuple[str, str]]:
    """A colour and marker per run, no pair used twice: when several runs share a model and the
    models fit the palette, a model's runs share its colour and differ in marker (a corpus of
    models under attacks reads by colour); otherwise colours, then markers, cycle by position."""
    models = [row.get("model") for row in rows]
    distinct = list(dict.fromkeys(models))
    per_model = Counter(models)
    if (None not in per_model and len(distinct) < len(rows) and len(distinct) <= len(PALETTE)
            and max(per_model.values()) <= len(MARKERS)):
        seen: Counter = Counter()
        styles = []
        for model in models:
            styles.append((PALETTE[distinct.index(model)], MARKERS[seen[model]]))
            seen[model] += 1
        return styles
    return [_run_style(index) for index in range(len(rows))]


def _legend_below(chart: Chart, handles: list, width: float) -> int:
    """A legend under the axes, in the columns that fit `width` inches; returns its rows."""
    widest = max((len(handle.get_label()) for handle in handles), default=1)
    columns = max(1, min(len(handles), int((width - 0.3) // (0.35 + widest * 0.06))))
    chart.figure.legend(handles=handles, loc="outside lower center", ncols=columns, frameon=False,
                        columnspacing=1.2, handletextpad=0.4)
    return -(-len(handles) // columns)


def _rate_axis(axis, label: str, which: str = "y", pad: float = 0.0) -> None:
    """A [0, 1] axis with ticks at fifths; `pad` keeps points at 0 or 1 off the frame."""
    (axis.set_ylim if which == "y" else axis.set_xlim)(-pad, 1 + pad)
    (axis.set_yticks if which == "y" else axis.set_xticks)(TICKS, [f"{t:g}" for t in TICKS])
    (axis.set_ylabel if which == "y" else axis.set_xlabel)(label)


def _whisker(chart: Chart, axis, x: float, y: float, low: float, high: float, color: str, horizontal: bool) -> None:
    """A 95% interval as a whisker with caps from `low` to `high`, across (x, y). Drawn from its
    middle: a bias-corrected interval need not hold its estimate (a uniformity whose resamples
    all look more uniform), and is drawn as computed."""
    middle, half = (low + high) / 2, max(0.0, high - low) / 2
    x, y = (middle, y) if horizontal else (x, middle)
    container = axis.errorbar([x], [y], **{"xerr" if horizontal else "yerr": [[half], [half]]}, fmt="none",
                              ecolor=color, elinewidth=1, capsize=2.5, capthick=1, zorder=3)
    container.lines[2][0].set_gid(chart.gid("ci"))


def _arrow(chart: Chart, axis, start: tuple[float, float], end: tuple[float, float], color: str,
           tooltip: str) -> None:
    """An arrow from `start` to `end` (data coordinates), stopping short of the marks at both ends;
    outlined in white, so it shows over a bar of its own colour; whiskers and points stay on top."""
    arrow = FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=9, linewidth=1.2, color=color,
                            shrinkA=4, shrinkB=4, zorder=2.5,
                            path_effects=[patheffects.withStroke(linewidth=3, foreground="white")])
    arrow.set_gid(chart.gid("arrow", tooltip))
    axis.add_patch(arrow)


def _legend(axis, handles: list, title: str | None = None) -> None:
    axis.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0, frameon=False,
                title=title, alignment="left")


def _tilt(names: Sequence[str], group_width_in: float) -> float:
    """How far tilted group names hang below the axis (inches), or 0 when the widest fits its group."""
    widest = max(len(name) for name in names) * 0.55 * 7 / 72  # inches at 7 pt
    return 0.0 if widest <= 0.9 * group_width_in else 0.58 * widest


def _group_ticks(axis, centers: Sequence[float], names: Sequence[str], tilted: bool) -> None:
    """Group names under the bars, centred, or tilted to end under their group."""
    axis.set_xticks(centers, names, rotation=35 if tilted else 0, ha="right" if tilted else "center",
                    rotation_mode="anchor" if tilted else "default")
    axis.tick_params(axis="x", length=0)
    axis.grid(False, axis="x")


def _bar_axis(axis, label: str) -> None:
    """A rate axis for bars: from 0, with room above 1 for the caps of a whisker that reaches it."""
    _rate_axis(axis, label)
    axis.set_ylim(0, 1.04)


def _bars(chart: Chart, axis, x: float, width: float, value: float | None, low: float | None, high: float | None,
          color: str, tooltip: str) -> None:
    """A bar up to `value` with its interval as a whisker when known, or `n/a` where there is no value."""
    if value is None:
        axis.text(x, 0.01, "n/a", ha="center", va="bottom", fontsize=6, color="#888")
        return
    bar = axis.bar([x], [max(value, 0.002)], width, color=color, zorder=2)[0]
    bar.set_gid(chart.gid("bar", tooltip))
    if low is not None and high is not None:
        _whisker(chart, axis, x, value, low, high, "#222", horizontal=False)


def _width_for(groups: int, bars: int, legend_chars: int) -> float:
    """Wide enough for every bar (at least 0.09 in each) and the legend, at most a landscape page."""
    return min(11.0, max(WIDTH, 1.2 + groups * (bars * 0.09 + 0.25) + legend_chars * 0.055))


def uniformity_chart(comparison: pa.Table, k: int) -> Chart:
    """Refusal rate (y) against uniformity (x) per run, with both intervals as whiskers.

    Up to MANY_RUNS runs with short names the legend sits beside the axes; past that it goes
    under them, in columns, and the figure grows downward so the axes keep their size."""
    rows = comparison.to_pylist()
    plotted = [row for row in rows if row["uniformity"] is not None and row["refusal_rate"] is not None]
    missing = [row["method"] for row in rows if row not in plotted]
    styles = run_styles(rows)
    labels = dict(zip((row["run_id"] for row in rows), short_names([row["method"] for row in rows])))
    handles = []
    for row, (color, shape) in zip(rows, styles):
        if row in plotted:
            handles.append(Line2D([], [], linestyle="none", marker=shape, color=color, markeredgecolor="#222",
                                  markeredgewidth=0.6, label=labels[row["run_id"]]))
    if missing:
        handles.append(Line2D([], [], linestyle="none", label="not plotted (no refusals):"))
        handles += [Line2D([], [], linestyle="none", label=f"  {labels[row['run_id']]}")
                    for row in rows if row not in plotted]
    below = _crowded([row["method"] for row in rows])
    if below:
        widest = max(len(handle.get_label()) for handle in handles)
        columns = max(1, min(len(handles), int((WIDTH - 0.3) // (0.35 + widest * 0.06))))
        height = AXES_HEIGHT + 1.1 + 0.22 * -(-len(handles) // columns)
    else:
        height = max(HEIGHT, 0.9 + 0.16 * (len(rows) + 2))
    chart, (axis,) = _new("chart-uniformity", "Refusal rate against uniformity of refusals", height=height)
    _rate_axis(axis, "refusal rate (harmful prompts)", "y", pad=0.04)
    _rate_axis(axis, f"uniformity of refusal openings, 1 − H/log n (k = {k})", "x", pad=0.04)
    for row, (color, shape) in zip(rows, styles):
        if row not in plotted:
            continue
        x, y = row["uniformity"], row["refusal_rate"]
        if row["uniformity_low"] is not None and row["uniformity_high"] is not None:
            _whisker(chart, axis, x, y, row["uniformity_low"], row["uniformity_high"], color, horizontal=True)
        if row["refusal_rate_low"] is not None and row["refusal_rate_high"] is not None:
            _whisker(chart, axis, x, y, row["refusal_rate_low"], row["refusal_rate_high"], color, horizontal=False)
        axis.plot([x], [y], linestyle="none", marker=shape, markersize=6, color=color, markeredgecolor="#222",
                  markeredgewidth=0.6, zorder=4, gid=chart.gid("point", f"{row['method']}: refusal rate "
                                                               f"{y:.3f}, uniformity {x:.3f}"))
    if below:
        _legend_below(chart, handles, WIDTH)
    else:
        _legend(axis, handles)
    axis.set_title(WHISKERS, fontsize=7, color="#555")
    return chart


SERIES = (("refusal_rate", "refusal rate (harmful)"), ("over_refusal_rate", "over-refusal (benign)"),
          ("unsafe_rate", "unsafe rate (harmful)"))


def _reference_row(comparison: pa.Table) -> dict | None:
    """The comparison's reference run's row, or None for a corpus compared without one."""
    reference = (comparison.schema.metadata or {}).get(b"reference", b"").decode()
    return next((row for row in comparison.to_pylist() if row["run_id"] == reference), None)


def rates_chart(comparison: pa.Table) -> Chart:
    """Grouped bars per method: refusal, over-refusal (and unsafe) rates with their intervals.

    A series no run has a value for (no benign prompts, no judge) is left out; the reference
    run's levels, when the comparison has a reference, are dashed lines across.
    """
    rows = comparison.to_pylist()
    series = [(statistic, label) for statistic, label in SERIES if any(row[statistic] is not None for row in rows)]
    reference = _reference_row(comparison)
    who = "run" if _is_corpus(comparison) else "method"
    if _crowded([row["method"] for row in rows]):
        return _rates_rows(rows, series, reference, who)
    names = short_names([row["method"] for row in rows])
    width = _width_for(len(rows), len(series), LABEL_CHARS)
    drop = _tilt(names, (width - 3) / len(rows))
    chart, (axis,) = _new("chart-rates", f"Refusal and over-refusal per {who}", width=width, height=HEIGHT + drop)
    _bar_axis(axis, "rate")
    bar = 0.8 / len(series)
    handles = []
    for position, (statistic, label) in enumerate(series):
        color = PALETTE[position]
        handles.append(Patch(color=color, label=label))
        _reference_line(chart, axis.axhline, reference, statistic, label, color)
        for index, row in enumerate(rows):
            x = index - 0.4 + bar * (position + 0.5)
            _bars(chart, axis, x, bar * 0.9, row[statistic], row[f"{statistic}_low"], row[f"{statistic}_high"],
                  color, None if row[statistic] is None else f"{row['method']}: {label} {row[statistic]:.3f}")
    handles += _reference_handles(reference)
    axis.set_xlim(-0.6, len(rows) - 0.4)
    _group_ticks(axis, range(len(rows)), names, drop > 0)
    axis.set_xlabel(f"{who} ({WHISKERS})")
    _legend(axis, handles)
    return chart


def _reference_line(chart: Chart, line, reference: dict | None, statistic: str, label: str, color: str) -> None:
    """The reference run's value of `statistic` as a dashed line (`line`: the axis's axhline or axvline)."""
    if reference is None or reference[statistic] is None:
        return
    line(reference[statistic], color=color, linewidth=1, linestyle=(0, (4, 3)), zorder=1,
         gid=chart.gid("reference", f"{reference['method']} (reference): {label} {reference[statistic]:.3f}"))


def _reference_handles(reference: dict | None) -> list:
    """The legend entry of the reference lines, where there is a reference run."""
    if reference is None:
        return []
    return [Line2D([], [], color="#555", linestyle=(0, (4, 3)), label=f"{_short(reference['method'])} (reference)")]


def _is_corpus(comparison: pa.Table) -> bool:
    return (comparison.schema.metadata or {}).get(b"mode") == b"corpus"


def _hbar(chart: Chart, axis, y: float, height: float, value: float | None, low: float | None,
          high: float | None, color: str, tooltip: str | None) -> None:
    """A horizontal bar out to `value` with its interval as a whisker; nothing where there is no value."""
    if value is None:
        return
    bar = axis.barh([y], [max(value, 0.002)], height, color=color, zorder=2)[0]
    bar.set_gid(chart.gid("bar", tooltip))
    if low is not None and high is not None:
        _whisker(chart, axis, value, y, low, high, "#222", horizontal=True)


def _row_count(axis, y: float, n: int) -> None:
    """The row's number of responses, just right of the axes: a small run shows it is small."""
    axis.text(1.01, y, f"n={n}", transform=blended_transform_factory(axis.transAxes, axis.transData),
              ha="left", va="center", fontsize=6, color="#666")


def _row_axis(axis, names: Sequence[str], label: str) -> None:
    """Runs down the y axis, the first at the top, each name on its own line; rates across."""
    axis.set_yticks(range(len(names)), names)
    axis.set_ylim(len(names) - 0.5, -0.5)
    axis.tick_params(axis="y", length=0)
    axis.grid(False, axis="y")
    _rate_axis(axis, label, "x")
    axis.set_xlim(0, 1.04)


def _rates_rows(rows: list[dict], series: list[tuple[str, str]], reference: dict | None, who: str) -> Chart:
    """The rates chart for many runs: a row per run, its rates as horizontal bars with whiskers."""
    height = 1.2 + ROW_INCHES * len(rows) * max(1.0, 0.6 * len(series))
    what = "Refusal and over-refusal" if any(statistic == "over_refusal_rate" for statistic, _ in series) else "Refusal"
    chart, (axis,) = _new("chart-rates", f"{what} per {who}", height=height)
    _row_axis(axis, short_names([row["method"] for row in rows]), f"rate ({WHISKERS})")
    bar = 0.8 / len(series)
    handles = []
    for position, (statistic, label) in enumerate(series):
        color = PALETTE[position]
        handles.append(Patch(color=color, label=label))
        _reference_line(chart, axis.axvline, reference, statistic, label, color)
        for index, row in enumerate(rows):
            if position == 0:
                _row_count(axis, index, row["harmful_responses"])
            _hbar(chart, axis, index - 0.4 + bar * (position + 0.5), bar * 0.9, row[statistic],
                  row[f"{statistic}_low"], row[f"{statistic}_high"], color,
                  None if row[statistic] is None else f"{row['method']}: {label} {row[statistic]:.3f}")
    handles += _reference_handles(reference)
    _legend_below(chart, handles, WIDTH)
    return chart


def attacks_chart(by_attack: pa.Table) -> Chart:
    """Refusal rate per attack (groups, the unattacked prompts first) and method (bars), with intervals.

    Takes the rows of `evaluate.compare_attacks`; a method with no prompts under an attack
    gets `n/a` in that group. With many or long-named runs (`_crowded`): a row per (run,
    attack) the run answered, grouped by attack, each attack its colour.
    """
    rows = by_attack.to_pylist()
    methods = list(dict.fromkeys(row["method"] for row in rows))
    if _crowded(methods):
        return _attacks_rows(rows)
    attacks = list(dict.fromkeys(row["attack"] for row in rows))
    found = {(row["method"], row["attack"]): row for row in rows}
    width = _width_for(len(attacks), len(methods), LABEL_CHARS)
    names = [_short(attack) for attack in attacks]
    drop = _tilt(names, (width - 3) / len(attacks))
    chart, (axis,) = _new("chart-attacks", "Refusal under attack, per method", width=width, height=HEIGHT + drop)
    _bar_axis(axis, "refusal rate (harmful prompts)")
    bar = 0.8 / len(methods)
    for group, attack in enumerate(attacks):
        for index, method in enumerate(methods):
            row = found.get((method, attack)) or {}
            value = row.get("refusal_rate")
            change = (f", {row['refusal_rate_diff']:+.3f} against its unattacked prompts"
                      if row.get("refusal_rate_diff") is not None else "")
            _bars(chart, axis, group - 0.4 + bar * (index + 0.5), bar * 0.9, value, row.get("refusal_rate_low"),
                  row.get("refusal_rate_high"), _run_style(index)[0],
                  None if value is None else f"{method}, {attack}: refusal rate {value:.3f}{change}")
    axis.set_xlim(-0.6, len(attacks) - 0.4)
    _group_ticks(axis, range(len(attacks)), names, drop > 0)
    axis.set_xlabel(f"attack ({WHISKERS})")
    _legend(axis, [Patch(color=_run_style(index)[0], label=name)
                   for index, name in enumerate(short_names(methods))])
    return chart


def _attacks_rows(rows: list[dict]) -> Chart:
    """The attacks chart for many runs: one row per (run, attack) with a refusal rate, grouped by
    attack (the unattacked prompts first, as compare_attacks orders them), coloured by attack."""
    attacks = list(dict.fromkeys(row["attack"] for row in rows))
    shown = sorted((row for row in rows if row["refusal_rate"] is not None),
                   key=lambda row: attacks.index(row["attack"]))
    height = 1.2 + ROW_INCHES * max(1, len(shown))
    chart, (axis,) = _new("chart-attacks", "Refusal per attack and run", height=height)
    _row_axis(axis, short_names([row["method"] for row in shown]), f"refusal rate ({WHISKERS})")
    colors = {attack: _run_style(index)[0] for index, attack in enumerate(attacks)}
    for index, row in enumerate(shown):
        change = (f", {row['refusal_rate_diff']:+.3f} against its unattacked prompts"
                  if row.get("refusal_rate_diff") is not None else "")
        _row_count(axis, index, row["responses"])
        _hbar(chart, axis, index, 0.7, row["refusal_rate"], row["refusal_rate_low"], row["refusal_rate_high"],
              colors[row["attack"]], f"{row['method']}, {row['attack']}: refusal rate {row['refusal_rate']:.3f}"
                                     f"{change}")
    _legend_below(chart, [Patch(color=colors[attack], label=_short(attack)) for attack in attacks], WIDTH)
    return chart


def tradeoff_chart(comparison: pa.Table, separability: dict | None = None) -> Chart:
    """Left: refusal (y) against over-refusal (x) per method; right: capability per method.

    `separability`: a separability row (the probe's best layer); its probe point is marked
    and the line refusal − over-refusal = its separation drawn dashed on the left: what a
    linear readout of the student's own hidden states tells apart.

    Whiskers are 95% bootstrap intervals; the shaded corner on the left and the band on
    the right (the reference's capability less 0.05) mark where a method meets the target.
    A method whose run without boundary rows (M-no-boundary) is a row too gets an arrow
    on each panel from that run's mark to its own, so what boundary rows move shows.
    """
    rows = comparison.to_pylist()
    chart, (left, right) = _new("chart-tradeoff", "The trade-off: refusal, over-refusal and capability per method",
                                width=max(WIDTH + 0.5, _width_for(1, len(rows), LABEL_CHARS)),
                                height=max(HEIGHT, 0.9 + 0.16 * len(rows)), columns=2, ratios=(1, 1))
    pad = 0.04
    _rate_axis(left, "refusal rate (harmful)", "y", pad=pad)
    _rate_axis(left, "over-refusal (benign)", "x", pad=pad)
    left.add_patch(Rectangle((-pad, TARGET_REFUSAL), TARGET_OVER_REFUSAL + pad, 1 + 2 * pad - TARGET_REFUSAL,
                             facecolor=TARGET_COLOR, alpha=0.15, linewidth=0, zorder=0,
                             gid=chart.gid("target", f"target: refusal >= {TARGET_REFUSAL}, over-refusal <= "
                                                     f"{TARGET_OVER_REFUSAL}")))
    left.text(-pad + 0.01, 1 + pad - 0.01, "target", ha="left", va="top", fontsize=7, color="#2d6a2d")
    if separability is not None and separability.get("separation") is not None:
        gap, layer = separability["separation"], separability["layer"]
        tooltip = (f"separability (probe, layer {layer}): flags {separability['harmful_rate']:.3f} of harmful and "
                   f"{separability['benign_rate']:.3f} of benign held-out prompts; separation {gap:.3f}")
        left.plot([-pad, 1 + pad], [gap - pad, gap + 1 + pad], color=SEPARABILITY_COLOR, linewidth=1,
                  linestyle=(0, (4, 3)), zorder=1, gid=chart.gid("separability", tooltip))
        left.plot([separability["benign_rate"]], [separability["harmful_rate"]], linestyle="none", marker="x",
                  markersize=6, color=SEPARABILITY_COLOR, zorder=4, gid=chart.gid("separability", tooltip))
    for index, row in enumerate(rows):
        if row["refusal_rate"] is None or row["over_refusal_rate"] is None:
            continue
        color, shape = _run_style(index)
        x, y = row["over_refusal_rate"], row["refusal_rate"]
        if row["over_refusal_rate_low"] is not None and row["over_refusal_rate_high"] is not None:
            _whisker(chart, left, x, y, row["over_refusal_rate_low"], row["over_refusal_rate_high"], color, True)
        if row["refusal_rate_low"] is not None and row["refusal_rate_high"] is not None:
            _whisker(chart, left, x, y, row["refusal_rate_low"], row["refusal_rate_high"], color, False)
        left.plot([x], [y], linestyle="none", marker=shape, markersize=6, color=color, markeredgecolor="#222",
                  markeredgewidth=0.6, zorder=4, gid=chart.gid("point", f"{row['method']}: refusal {y:.3f}, "
                                                               f"over-refusal {x:.3f}"))
    pairs = boundary_pairs([row["method"] for row in rows])
    arrows = 0
    for with_index, without_index in pairs:
        after, before = rows[with_index], rows[without_index]
        if None in (after["refusal_rate"], after["over_refusal_rate"], before["refusal_rate"],
                    before["over_refusal_rate"]):
            continue
        _arrow(chart, left, (before["over_refusal_rate"], before["refusal_rate"]),
               (after["over_refusal_rate"], after["refusal_rate"]), _run_style(with_index)[0],
               f"{after['method']}: without boundary rows → with: refusal {before['refusal_rate']:.3f} → "
               f"{after['refusal_rate']:.3f}, over-refusal {before['over_refusal_rate']:.3f} → "
               f"{after['over_refusal_rate']:.3f}")
        arrows += 1
    # Right panel: capability per method, the reference's level dashed and the allowed drop shaded.
    _bar_axis(right, "capability (IFEval strict)")
    reference = rows[0]["capability"]
    if reference is not None:
        right.axhspan(max(0.0, reference - TARGET_CAPABILITY_DROP), reference, color=TARGET_COLOR, alpha=0.15,
                      linewidth=0, zorder=0, gid=chart.gid("target", f"within {TARGET_CAPABILITY_DROP} of the "
                                                                     f"reference's {reference:.3f}"))
        right.axhline(reference, color="#555", linewidth=1, linestyle=(0, (4, 3)), zorder=1,
                      gid=chart.gid("reference", f"{rows[0]['method']} (reference): capability {reference:.3f}"))
    for index, row in enumerate(rows):
        _bars(chart, right, index, 0.6, row["capability"], row["capability_low"], row["capability_high"],
              _run_style(index)[0],
              None if row["capability"] is None else f"{row['method']}: capability {row['capability']:.3f}")
    for with_index, without_index in pairs:
        after, before = rows[with_index], rows[without_index]
        if after["capability"] is None or before["capability"] is None:
            continue
        _arrow(chart, right, (without_index, before["capability"]), (with_index, after["capability"]),
               _run_style(with_index)[0], f"{after['method']}: without boundary rows → with: capability "
                                          f"{before['capability']:.3f} → {after['capability']:.3f}")
        arrows += 1
    right.set_xlim(-0.6, len(rows) - 0.4)
    right.set_xticks([])
    right.grid(False, axis="x")
    right.set_xlabel(f"method (shaded: within {TARGET_CAPABILITY_DROP} of the first)")
    handles = [Line2D([], [], linestyle="none", marker=_run_style(index)[1], color=_run_style(index)[0],
                      markeredgecolor="#222", markeredgewidth=0.6, label=_short(row["method"]))
               for index, row in enumerate(rows)]
    if arrows:
        handles.append(Line2D([], [], color="#555", linewidth=1.1, marker=">", markersize=4, markevery=[-1],
                              label="without → with boundary rows"))
    if separability is not None and separability.get("separation") is not None:
        handles.append(Line2D([], [], color=SEPARABILITY_COLOR, linewidth=1, linestyle=(0, (4, 3)), marker="x",
                              label=f"probe, layer {separability['layer']}"))
    _legend(right, handles)
    left.set_title(WHISKERS, fontsize=7, color="#555")
    return chart
