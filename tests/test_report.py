"""`refusaldata report`: the files, their numbers, escaping, and the charts in a real browser."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import shutil
import subprocess
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from refusaldata.errors import InputError, NotFoundError
from refusaldata.evaluate import default_runs
from refusaldata.report import write_report
from refusaldata.schemas import TABLES

COMPARE_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "compare"
SVG = "{http://www.w3.org/2000/svg}"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1280,1000"]


def load_fixture(store) -> None:
    """The frozen three-run fixture of test_compare (base, self-distill, teacher)."""
    for name in ("prompts", "runs", "responses", "labels", "templates"):
        table = pq.read_table(COMPARE_FIXTURE / f"{name}.parquet")
        (store.replace if TABLES[name].replace else store.append)(name, table)


def _copy_run(store, source: str, name: str) -> str:
    """A second run with the same rows as `source`, named `name`."""
    source_id, copy_id = store.resolve_run(source), f"{name}-0000000000"
    for table in ("runs", "responses", "labels"):
        rows = store.read(table).filter(pc.equal(pc.field("run_id"), source_id))
        rows = rows.set_column(rows.schema.get_field_index("run_id"), "run_id", pa.array([copy_id] * rows.num_rows))
        if table == "runs":
            rows = rows.set_column(rows.schema.get_field_index("name"), "name", pa.array([name]))
        (store.replace if TABLES[table].replace else store.append)(table, rows)
    return copy_id


def test_report_files_numbers_and_charts(store, tmp_path):
    load_fixture(store)
    html_path, md_path = write_report(store, None, tmp_path / "out" / "study.html", bootstrap=200)
    assert (html_path, md_path) == (tmp_path / "out" / "study.html", tmp_path / "out" / "study.md")
    page, markdown = html_path.read_text(), md_path.read_text()
    # Self-contained: nothing to fetch; the figures' references point inside the page, and their
    # text is drawn as paths (no font named).
    for needle in ("<script", "<link", "src=", "@import"):
        assert needle not in page
    assert "font-family" not in page.split("<svg", 1)[1] and "<text" not in page
    assert re.findall(r'href="([^#])', page) == [] and re.findall(r"url\((?!#)", page) == []
    assert "| self-distill | 4 | 4 | 0.750 [0.25,1.00] | +0.250 [" in markdown
    assert "| teacher | 1 | i'm sorry, but i can't | 3 | 0.750 |" in markdown
    assert "![Refusal rate against uniformity](study-uniformity.svg)" in markdown
    uniformity = ET.parse(tmp_path / "out" / "study-uniformity.svg").getroot()
    rates = ET.parse(tmp_path / "out" / "study-rates.svg").getroot()
    assert len(uniformity.findall(".//*[@class='point']")) == 3
    # Every plotted run has a horizontal and a vertical whisker (self-distill's uniformity
    # interval is [1, 1]: a zero-length whisker, still drawn).
    assert len(uniformity.findall(".//*[@class='ci']")) == 6
    # Refusal bars for three runs, over-refusal for two (the teacher answered no benign prompt).
    assert len(rates.findall(".//*[@class='bar']")) == 5
    assert len(rates.findall(".//*[@class='reference']")) == 2
    # Each mark says its value on hover.
    assert rates.find(f".//*[@class='bar']/{SVG}title").text == "base: refusal rate (harmful) 0.500"
    # The SVGs in the page are the same charts, and their ids do not collide.
    assert page.count("<svg") == 2 and 'id="chart-uniformity"' in page and 'id="chart-rates"' in page
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))


def test_tradeoff_chart_appears_with_capability(store, tmp_path):
    from refusaldata.schemas import CAPABILITY

    load_fixture(store)
    rows = [{"run_id": store.resolve_run(name), "suite": "embedded", "key": str(key), "strict": strict,
             "kl_to_base": 0.0, "instruction_ids": ["punctuation:no_comma"], "followed_strict": [strict]}
            for name, verdicts in (("base", [True, True, False]), ("self-distill", [True, False, False]))
            for key, strict in enumerate(verdicts)]
    store.replace("capability", pa.Table.from_pylist(rows, schema=CAPABILITY.schema))
    html_path, md_path = write_report(store, None, tmp_path / "study.html", bootstrap=100)
    chart = ET.parse(tmp_path / "study-tradeoff.svg").getroot()
    # Two runs with both rates plotted (the teacher answered no benign prompt), and two capability
    # bars (the teacher has none); the target corner and the capability band.
    assert len(chart.findall(".//*[@class='point']")) == 2
    assert len(chart.findall(".//*[@class='bar']")) == 2
    assert len(chart.findall(".//*[@class='target']")) == 2
    page = html_path.read_text()
    assert 'id="chart-tradeoff"' in page and page.count("<svg") == 3
    assert "![Refusal, over-refusal and capability per method](study-tradeoff.svg)" in md_path.read_text()


def test_figures_folder_gets_every_figure_as_png_and_pdf(cli, store, tmp_path):
    load_fixture(store)
    result = cli("report", "--out", tmp_path / "study.html", "--figures", tmp_path / "figures", "--bootstrap", "50")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip().endswith(f"figures in {tmp_path / 'figures'}")
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [
        "study-rates.pdf", "study-rates.png", "study-uniformity.pdf", "study-uniformity.png"]
    for key in ("rates", "uniformity"):
        png = (tmp_path / "figures" / f"study-{key}.png").read_bytes()
        assert png.startswith(b"\x89PNG")
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        # Print size: a page's text width (6.5 in) at 300 dpi.
        assert width == 1950 and height >= 900, (width, height)
        pdf = (tmp_path / "figures" / f"study-{key}.pdf").read_bytes()
        assert pdf.startswith(b"%PDF") and b"/MediaBox [ 0 0 468" in pdf
    (tmp_path / "a-file").write_text("x")
    result = cli("report", "--out", tmp_path / "r.html", "--figures", tmp_path / "a-file")
    assert result.exit_code == 1 and "--figures" in result.stderr and "is a file" in result.stderr
    assert not (tmp_path / "r.html").exists()


def test_report_without_capability_has_no_tradeoff_chart(store, tmp_path):
    load_fixture(store)
    html_path, _ = write_report(store, None, tmp_path / "study.html", bootstrap=50)
    assert "chart-tradeoff" not in html_path.read_text() and not (tmp_path / "study-tradeoff.svg").exists()


def test_methods_come_in_the_study_order(store, tmp_path):
    load_fixture(store)
    _copy_run(store, "self-distill", "nca")
    _copy_run(store, "base", "baseline-sft")
    ordered = [store.read("runs").filter(pc.equal(pc.field("run_id"), run_id))["name"][0].as_py()
               for run_id in default_runs(store)]
    assert ordered == ["base", "baseline-sft", "self-distill", "nca", "teacher"]
    _, md_path = write_report(store, None, tmp_path / "r.html", bootstrap=50)
    rows = [line.split(" | ")[0].lstrip("| ") for line in md_path.read_text().split("## Comparison")[1]
            .split("##")[0].splitlines() if line.startswith("| ") and not line.startswith("| method")]
    assert rows == ordered


def test_unsafe_rates_get_their_bars(cli, store, tmp_path):
    load_fixture(store)
    labels = store.read("labels").filter(pc.equal(pc.field("labeler"), "rules"))
    judged = labels.select(["run_id", "prompt_id", "sample_index"]).append_column(
        "labeler", pa.array(["judge"] * labels.num_rows)).append_column("unsafe", pc.invert(labels["refusal"]))
    store.replace("labels", judged)
    html_path, md_path = write_report(store, ["base", "self-distill"], tmp_path / "r.html", bootstrap=50)
    rates = ET.parse(tmp_path / "r-rates.svg").getroot()
    assert len(rates.findall(".//*[@class='bar']")) == 6
    assert "unsafe rate" in md_path.read_text() and "| base | 4 | 4 | 0.500 [" in md_path.read_text()
    assert "Unsafe verdicts from 'judge'." in md_path.read_text()
    # With two judges the report needs to be told which one counts.
    store.replace("labels", judged.set_column(judged.schema.get_field_index("labeler"), "labeler",
                                              pa.array(["judge-2"] * judged.num_rows)))
    with pytest.raises(InputError, match="several labelers stored unsafe verdicts"):
        write_report(store, ["base"], tmp_path / "r.html", bootstrap=10)
    result = cli("report", "--runs", "base", "--out", tmp_path / "r2.html", "--unsafe-labeler", "judge-2",
                 "--bootstrap", "10")
    assert result.exit_code == 0, result.stderr
    assert "Unsafe verdicts from 'judge-2'." in (tmp_path / "r2.md").read_text()


def test_model_text_is_escaped(store, tmp_path):
    load_fixture(store)
    labels = store.read("labels")
    base_id = store.resolve_run("base")
    hostile = pc.if_else(pc.equal(labels["run_id"], base_id), pa.scalar("<img src=x onerror=alert(1)> | no"),
                         labels["opening"])
    store.replace("labels", labels.set_column(labels.schema.get_field_index("opening"), "opening", hostile))
    html_path, md_path = write_report(store, ["base"], tmp_path / "r.html", bootstrap=20)
    assert "<img" not in html_path.read_text() and "&lt;img src=x onerror=alert(1)&gt; | no" in html_path.read_text()
    markdown = md_path.read_text()
    assert "<img" not in markdown and "&lt;img src=x onerror=alert(1)&gt; \\| no" in markdown


def test_report_errors(store, tmp_path):
    with pytest.raises(NotFoundError, match="no run in .* has labels from 'rules'"):
        write_report(store, None, tmp_path / "r.html")
    load_fixture(store)
    with pytest.raises(InputError, match="give a FILE.html"):
        write_report(store, ["base"], tmp_path / "r.txt")
    assert list(tmp_path.glob("r*")) == []


def test_cli_report(cli, store, tmp_path):
    load_fixture(store)
    out = tmp_path / "report.html"
    result = cli("report", "--runs", "self-distill,base", "--out", out, "--bootstrap", "100")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"wrote {out} and {tmp_path / 'report.md'}"
    markdown = (tmp_path / "report.md").read_text()
    assert "first run, 'self-distill'" in markdown and "| base | 4 | 4 | 0.500 [" in markdown
    assert "-0.250 [" in markdown


def test_cli_report_bad_runs(cli, store, tmp_path):
    load_fixture(store)
    result = cli("report", "--runs", "base,nope", "--out", tmp_path / "r.html")
    assert result.exit_code == 1 and result.stderr.startswith("Error: no run 'nope'")
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.glob("r*")) == []


# -- the charts in a real browser (Debian's chromium) --------------------------------------


class _DevTools:
    """A minimal Chrome DevTools protocol session on one page: commands and the events seen."""

    def __init__(self, socket):
        self.socket = socket
        self.events: list[dict] = []
        self.next_id = 0

    def call(self, method: str, timeout: float = 60, **params) -> dict:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.socket.recv(timeout=max(deadline - time.monotonic(), 0.1)))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def wait_for(self, event: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            self.events.append(json.loads(self.socket.recv(timeout=max(deadline - time.monotonic(), 0.1))))

    def open(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and failed loads reported since the last open."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(params["exceptionDetails"].get("text", "exception"))
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(" ".join(str(arg.get("value", arg.get("description"))) for arg in params["args"]))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(params["entry"]["text"])
        return found

    def requested(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]


@contextlib.contextmanager
def _chromium(tmp_path: Path):
    profile = tmp_path / "chromium-profile"
    process = subprocess.Popen([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                                "--remote-debugging-port=0", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 90
        while not (port_file.exists() and port_file.read_text().strip()):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chromium did not start (exit {process.poll()})")
            time.sleep(0.2)
        port = int(port_file.read_text().splitlines()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as response:
            pages = [t for t in json.load(response) if t["type"] == "page"]
        from websockets.sync.client import connect

        with connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=30) as socket:
            session = _DevTools(socket)
            for domain in ("Page", "Runtime", "Log", "Network"):
                session.call(f"{domain}.enable")
            yield session
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


CHART_CHECK = """JSON.stringify(Array.from(document.querySelectorAll('svg')).map(svg => {
  const box = svg.getBoundingClientRect();
  const inside = el => { const b = el.getBoundingClientRect();
    return b.left >= box.left - 1 && b.right <= box.right + 1 && b.top >= box.top - 1 && b.bottom <= box.bottom + 1; };
  const marks = Array.from(svg.querySelectorAll('.point, .bar'));
  return {id: svg.id, width: box.width, height: box.height, elements: svg.querySelectorAll('*').length,
          marks: marks.length, visibleMarks: marks.filter(m => { const b = m.getBoundingClientRect();
            return b.width > 0 && b.height > 0 && inside(m); }).length,
          textInside: Array.from(svg.querySelectorAll('text')).every(inside)};
}))"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_charts_render_in_chromium(store, tmp_path):
    pytest.importorskip("websockets.sync.client", reason="websockets (the dev extra) drives chromium")
    load_fixture(store)
    html_path, _ = write_report(store, None, tmp_path / "report.html", bootstrap=200)
    with _chromium(tmp_path) as browser:
        # The error collection works: a page that logs an error is caught.
        broken = tmp_path / "broken.html"
        broken.write_text("<!DOCTYPE html><title>x</title><script>console.error('deliberate')</script>")
        browser.open(broken.as_uri())
        assert any("deliberate" in error for error in browser.errors())

        browser.open(html_path.as_uri())
        assert browser.errors() == []
        assert all(url.startswith("file://") for url in browser.requested()), browser.requested()
        charts = json.loads(browser.call("Runtime.evaluate", expression=CHART_CHECK, returnByValue=True)
                            ["result"]["value"])
        assert [chart["id"] for chart in charts] == ["chart-uniformity", "chart-rates"]
        for chart in charts:
            assert chart["width"] > 300 and chart["height"] > 300 and chart["elements"] > 40, chart
            assert chart["marks"] == chart["visibleMarks"] > 0, chart
            assert chart["textInside"], chart
        assert [chart["marks"] for chart in charts] == [3, 5]
        size = browser.call("Page.getLayoutMetrics")["cssContentSize"]
        shot = browser.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                            clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})

        # Long run names are cut or tilted, never drawn outside the charts.
        long_names = [_copy_run(store, "base", "jbb-prompt_with_random_search-black_box-llama-2-7b-chat-hf"),
                      _copy_run(store, "self-distill", "a-very-long-method-name-" * 4)]
        long_path, _ = write_report(store, ["base", *long_names, "teacher"], tmp_path / "long.html", bootstrap=50)
        browser.open(long_path.as_uri())
        assert browser.errors() == []
        charts = json.loads(browser.call("Runtime.evaluate", expression=CHART_CHECK, returnByValue=True)
                            ["result"]["value"])
        assert [chart["marks"] for chart in charts] == [4, 7]
        assert all(chart["textInside"] and chart["marks"] == chart["visibleMarks"] for chart in charts), charts
    png = base64.b64decode(shot["data"])
    (tmp_path / "report.png").write_bytes(png)
    assert png.startswith(b"\x89PNG") and len(png) > 20_000


def test_an_interval_that_misses_its_estimate_is_drawn_as_computed():
    """A bias-corrected uniformity interval can lie beside its estimate (the quickstart's store
    had one); the whisker spans the interval itself, never a negative error bar."""
    import pyarrow as pa

    from refusaldata.evaluate import comparison_schema
    from refusaldata.figures import uniformity_chart

    schema = comparison_schema()
    row = {name: None for name in schema.names}
    row.update(run_id="r1", method="base", refusal_rate=0.5, uniformity=0.05, uniformity_low=0.10,
               uniformity_high=0.30)
    svg = uniformity_chart(pa.Table.from_pylist([row], schema=schema), 5).svg()
    assert 'id="chart-uniformity-ci-0"' in svg
