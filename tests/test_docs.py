"""The documentation site: it builds with `mkdocs build --strict` (no broken link or anchor), its generated
reference pages are what their generators write from the app and the SQL files now, and README stays a front door.

What the pages' commands and options say is checked against `--help` in tests/test_cli_docs.py.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def generator(name: str):
    """docs/<name>.py as a module (docs/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"docs_{name}", ROOT / "docs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mkdocs_build_strict(tmp_path):
    missing = [name for name in ("mkdocs", "material") if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (pip install -e '.[dev]')")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(tmp_path / "site")],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert (tmp_path / "site" / "reference" / "cli" / "index.html").exists()


@pytest.mark.parametrize("name", ["gen_cli", "gen_sql"])
def test_generated_reference_is_current(name):
    module = generator(name)
    page = module.PAGE
    assert page.exists(), f"{page} is missing: run python docs/{name}.py"
    assert page.read_text(encoding="utf-8") == module.render(), f"{page} is out of date: run python docs/{name}.py"


def test_cli_reference_has_every_command_and_option():
    from refusaldata.cli.main import command_tree

    text = (ROOT / "docs" / "reference" / "cli.md").read_text(encoding="utf-8")
    for path, command in command_tree().items():
        assert f"`refusaldata {path}`" in text, path
        for parameter in command.params:
            if parameter.param_type_name == "option" and not parameter.hidden:
                assert f"`{parameter.opts[0]}" in text or f", {parameter.opts[0]}" in text, (path, parameter.opts)


def test_sql_reference_has_every_asset():
    text = (ROOT / "docs" / "reference" / "sql.md").read_text(encoding="utf-8")
    for path in sorted((ROOT / "sql").glob("*.sql")):
        assert f"### {path.name}\n" in text, path.name


def test_every_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = {str(path.relative_to(ROOT / "docs")) for path in (ROOT / "docs").rglob("*.md")}
    assert {page for page in pages if f": {page}\n" not in nav} == set()


def test_readme_is_a_front_door():
    lines = README.splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines"
    assert "    ./setup.sh && .venv/bin/refusaldata quickstart" in lines
    marker = lines.index("<!-- test command -->")
    assert lines[marker + 1] == "    .venv/bin/python -m pytest -q -n 2 --dist worksteal"
    links = set(re.findall(r"\]\((docs/[^)#]+)", README))
    assert links and {link for link in links if not (ROOT / link).exists()} == set()


def test_user_facing_text_says_nothing_about_how_the_project_is_developed():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    pattern = re.compile(r"\bissues? #?\d+|(?<![\w&])#\d+\b|\bthis stop\b|\bwas fixed\b|\bearlier code\b",
                         re.IGNORECASE)
    found = [f"{page.relative_to(ROOT)}: {match.group(0)}" for page in pages
             for match in pattern.finditer(page.read_text(encoding="utf-8"))]
    assert found == []
