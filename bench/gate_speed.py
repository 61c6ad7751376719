"""How long `refusaldata gate` takes on a 200-prompt fixture, process start included, against
`python -c "import duckdb"` (the floor of any command that reads the store) in the same run.

The fixture: Do-Not-Answer's Claude and ChatGLM2 answers (../shared/data), imported, labelled
with the default labeler and exported as `fixture export --sample 200` would. Each command
line runs --repeats times in a fresh process, alternating with the floor; printed: the
median and fastest wall time of each and the gate's median over the floor's.

    python bench/gate_speed.py --repeats 7
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from refusaldata.fixture import export_fixture
from refusaldata.imports import import_responses
from refusaldata.label import label
from refusaldata.labelers.registry import DEFAULT_LABELER
from refusaldata.store import Store

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "labelled" / "donotanswer"
MODELS = ("Claude", "ChatGLM2")


def build_fixture(folder: Path, sample: int) -> Path:
    store = Store(folder / "store")
    for model in MODELS:
        import_responses(store, DATA / f"annotated_response_{model}.csv", "csv", model=model, dataset="donotanswer",
                         prompt_column="question")
    label(store, labeler=DEFAULT_LABELER)
    out = folder / "fixture"
    export_fixture(store, [f"import-{model}" for model in MODELS], out, sample=sample, seed=0)
    return out


def timed(command: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True)
    return time.perf_counter() - start, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sample", type=int, default=200)
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"Do-Not-Answer's answers are not at {DATA}")
    script = Path(sys.executable).with_name("refusaldata")
    with tempfile.TemporaryDirectory() as folder:
        fixture = build_fixture(Path(folder), args.sample)
        commands = {
            "python -c 'import duckdb'": [sys.executable, "-c", "import duckdb"],
            "gate (refusal)": [str(script), "gate", "import-ChatGLM2", "--baseline", "import-Claude",
                               "--max-refusal-drop", "0.05", "--store", str(fixture)],
            "gate (refusal, uniformity)": [str(script), "gate", "import-ChatGLM2", "--baseline", "import-Claude",
                                           "--max-refusal-drop", "0.05", "--max-uniformity-drop", "0.05",
                                           "--store", str(fixture), "--format", "json"],
            "python -c 'import refusaldata.testing'": [sys.executable, "-c", "import refusaldata.testing"],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, command in commands.items():
                seconds, code = timed(command)
                if code not in (0, 1):
                    sys.exit(f"{name} exited {code}")
                times[name].append(seconds)
    floor = statistics.median(times["python -c 'import duckdb'"])
    print(f"{args.sample}-prompt fixture, {args.repeats} runs each, wall seconds per command line")
    print(f"{'command':<40} {'median':>7} {'fastest':>8} {'x floor':>8}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<40} {median:7.2f} {min(values):8.2f} {median / floor:8.1f}")


if __name__ == "__main__":
    main()
