"""Do the lower bounds in pyproject.toml hold? Install the floors of the CLI's direct
dependencies in a scratch environment and run the CLI tests there (not part of CI).

    python tests/floors/run_floors.py                 # the default test files below
    python tests/floors/run_floors.py tests/test_sql.py -k views

The scratch venv (under a temporary folder, or --venv DIR, kept for a rerun) gets each
dependency named in FLOORS at the lowest version pyproject.toml allows (click at the lowest
the typer floor accepts, numpy at its floor, as pyarrow's floor was built against numpy 1).
Everything else (torch, pytest, refusaldata itself, editable) comes from the project's
.venv, appended to sys.path after the scratch site-packages, so the floors win wherever
both hold a package. Exit status: pytest's.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The CLI's direct dependencies whose floors are checked, and what they pull in at their floor.
FLOORS = ("typer", "duckdb", "pyarrow", "rich", "polars", "numpy")
EXTRA = {"typer": "click==8.1.7"}  # typer before 0.16 runs on click; 8.1.7 is what typer 0.12 was released with
# Not a dependency, but the Python API's docs example calls .df(); this one runs on numpy 1.26.
TEST_ONLY = ["pandas==2.2.3"]
TESTS = ["tests/test_cli_start.py", "tests/test_cli_tables.py", "tests/test_sql_anywhere.py", "tests/test_sql.py",
         "tests/test_cli_output.py", "tests/test_mine.py", "tests/test_python_api.py"]


def floors() -> dict[str, str]:
    """name -> lowest version, from pyproject.toml's dependencies (`name>=X`)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    block = text.split("dependencies = [", 1)[1].split("]", 1)[0]
    found = dict(re.findall(r'"([A-Za-z0-9_.-]+)>=([0-9][^",;]*)"', block))
    missing = [name for name in FLOORS if name not in found]
    if missing:
        raise SystemExit(f"pyproject.toml has no floor for {', '.join(missing)}")
    return {name: found[name] for name in FLOORS}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, help="scratch venv folder (made if missing, reused if there)")
    parser.add_argument("pytest_args", nargs="*", help="test files and pytest options (default: the CLI tests)")
    args = parser.parse_args()
    folder = args.venv or Path(tempfile.mkdtemp(prefix="refusaldata-floors-"))
    python = folder / "bin" / "python"
    pins = [f"{name}=={version}" for name, version in floors().items()]
    pins += [EXTRA[name] for name in FLOORS if name in EXTRA] + TEST_ONLY
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    print("floors:", " ".join(pins), flush=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *pins], check=True)  # with what they need
    # The project's environment after the floors: torch, pytest and refusaldata (editable) from there.
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    project_site = sysconfig.get_path("purelib")
    (Path(site) / "zz_project_venv.pth").write_text(f"import site; site.addsitedir({project_site!r})\n")
    versions = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(' '.join(f'{n}=={m.version(n)}' for n in "
                            f"{list(FLOORS) + ['click']!r}))"], capture_output=True, text=True, check=True)
    print("running with:", versions.stdout.strip(), flush=True)
    tests = args.pytest_args or TESTS
    return subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
