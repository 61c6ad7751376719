"""The report's figures hold a corpus of 30 runs and more: legends beside or under the axes
without squeezing them, one colour-and-marker pair per run, labels that do not overlap, and
no warning on the terminal."""

from __future__ import annotations

import warnings

import pyarrow as pa
import pytest

from refusaldata.evaluate import STATISTICS, comparison_schema
from refusaldata.figures import (
    MARKERS, PALETTE, attacks_chart, rates_chart, run_styles, short_names, uniformity_chart,
)

ATTACKS = ("PAIR", "GCG", "JailbreakChat", "DSN", "prompt_with_random_search")
MODELS = ("gpt-3.5-turbo-1106", "gpt-4-0125-preview", "llama-2-7b-chat-hf", "vicuna-13b-v1.5")


def _corpus(runs: int) -> pa.Table:
    """A comparison of `runs` JailbreakBench-like runs (long names sharing their start), some tiny."""
    rows = []
    for index in range(runs):
        model, attack = MODELS[index % len(MODELS)], ATTACKS[(index // len(MODELS)) % len(ATTACKS)]
        name = f"jbb-{attack}-black_box-{model}" + (f"-{index}" if index >= len(MODELS) * len(ATTACKS) else "")
        rate, uniformity = (index * 37 % 100) / 100, (index * 53 % 100) / 100
        row = {"method": name, "run_id": f"run-{index:03d}", "model": model, "adapter": None,
               "harmful_prompts": 100, "harmful_responses": 1 if index % 9 == 0 else 100, "refusals": 10,
               "benign_prompts": 0, "benign_responses": 0}
        for statistic in STATISTICS:
            value = {"refusal_rate": rate, "uniformity": uniformity, "top1_share": 0.5}.get(statistic)
            row.update({statistic: value, f"{statistic}_low": None if value is None else max(0, value - 0.1),
                        f"{statistic}_high": None if value is None else min(1, value + 0.1)})
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=comparison_schema().with_metadata(
        {"mode": "corpus", "reference": "", "split": "all"}))


def _by_attack(comparison: pa.Table) -> pa.Table:
    rows = [{"method": row["method"], "run_id": row["run_id"], "attack": row["method"].split("-")[1],
             "prompts": 100, "responses": row["harmful_responses"], "refusals": 10,
             "refusal_rate": row["refusal_rate"], "refusal_rate_low": row["refusal_rate_low"],
             "refusal_rate_high": row["refusal_rate_high"]} for row in comparison.to_pylist()]
    return pa.Table.from_pylist(rows)


def _draw(chart):
    figure = chart.figure
    figure.canvas.draw()
    return figure.canvas.get_renderer()


def _overlap(first, second) -> bool:
    return first.x0 < second.x1 and second.x0 < first.x1 and first.y0 < second.y1 and second.y0 < first.y1


@pytest.mark.parametrize("runs", [8, 30, 45])
def test_figures_of_many_runs_render_without_a_warning(runs):
    comparison = _corpus(runs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for chart in (uniformity_chart(comparison, 5), rates_chart(comparison), attacks_chart(_by_attack(comparison))):
            chart.svg()
            chart.image("png")
    assert [str(warning.message) for warning in caught] == []


@pytest.mark.parametrize("runs", [30, 45])
def test_legends_sit_outside_the_axes_which_keep_their_size(runs):
    chart = uniformity_chart(_corpus(runs), 5)
    renderer = _draw(chart)
    (axis,) = chart.figure.axes
    legend = chart.figure.legends[0].get_window_extent(renderer)
    box = axis.get_window_extent(renderer)
    assert not _overlap(legend, box) and legend.y1 <= box.y0
    dpi = chart.figure.dpi
    assert box.width / dpi > 4.5 and box.height / dpi > 2.0  # not a thin strip beside the legend
    texts = [text.get_window_extent(renderer) for text in chart.figure.legends[0].get_texts()]
    assert all(text.x1 <= chart.figure.bbox.x1 + 1 for text in texts)  # nothing cut off at the right


@pytest.mark.parametrize("make", [rates_chart, lambda comparison: attacks_chart(_by_attack(comparison))])
def test_run_labels_do_not_overlap(make):
    chart = make(_corpus(30))
    renderer = _draw(chart)
    (axis,) = chart.figure.axes
    labels = [label.get_window_extent(renderer) for label in axis.get_yticklabels() if label.get_text()]
    assert len(labels) == 30
    for first, second in zip(labels, labels[1:]):
        assert not _overlap(first, second)
    assert all(label.x0 >= 0 for label in labels)


def test_every_run_gets_its_own_colour_and_marker():
    for runs in (8, 30, 45, len(PALETTE) * len(MARKERS)):
        rows = [{"model": f"m{index}"} for index in range(runs)]
        assert len(set(run_styles(rows))) == runs
    # runs of one model share its colour, each with its own marker
    grouped = run_styles([{"model": MODELS[index % 4]} for index in range(20)])
    assert len(set(grouped)) == 20 and len({color for color, _ in grouped}) == 4


def test_long_names_are_cut_in_the_middle_and_stay_distinct():
    names = [f"jbb-test-artifact-{kind}_box-vicuna-13b-v1.5" for kind in ("black", "white")]
    shown = short_names(names)
    assert len(set(shown)) == 2 and all(len(name) <= 34 and "…" in name for name in shown)
    assert all(name.endswith("vicuna-13b-v1.5") for name in shown)
