"""The wheel carries every subpackage, sql/ and the CLI under the refusaldata namespace."""

from __future__ import annotations

from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, from PyPI (dev extra)
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_for_the_wheel():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    mapping = setuptools["package-dir"]
    found = set()
    for package, folder in mapping.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            relative = init.parent.relative_to(base).parts
            found.add(".".join((package, *relative)))
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    assert not any(name == "cli" or name.startswith("cli.") for name in listed)


def test_cli_help_lists_every_registered_module(cli):
    result = cli("--help")
    assert result.exit_code == 0
    for command in ("sql", "tables"):
        assert command in result.stdout
