"""Write docs/reference/cli.md from the Typer app: every command's help, usage, arguments and options.

    python docs/gen_cli.py           # rewrite the page
    python docs/gen_cli.py --check   # exit 1 when the page differs from what the app gives now

The page is never edited by hand: each entry is what the command's own `--help` says
(its help text and each parameter's help record, defaults included), so it changes only
when the app does. tests/test_docs.py checks that the checked-in page is current.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

PAGE = Path(__file__).resolve().parent / "reference" / "cli.md"
PROGRAM = "refusaldata"

HEADER = """\
# CLI reference

Every `refusaldata` command with its arguments and options, as its `--help` gives them.
This page is generated from the command-line app by `python docs/gen_cli.py`.
For what the commands are for, start with the [task pages](../tasks/import.md).
"""


def escape(text: str) -> str:
    """Markdown-safe text, leaving `code spans` as they are."""
    parts = re.split(r"(`[^`\n]+`)", text)
    for index in range(0, len(parts), 2):
        piece = parts[index].replace("\\", "\\\\")
        piece = re.sub(r"([*_\[\]])", r"\\\1", piece)
        parts[index] = piece.replace("<", "&lt;").replace(">", "&gt;")
    return "".join(parts)


def paragraphs(help_text: str | None) -> list[str]:
    """A command's help as Markdown paragraphs (hard-wrapped lines joined)."""
    text = (help_text or "").split("\f")[0].strip()
    return [escape(" ".join(block.split())) for block in re.split(r"\n\s*\n", text) if block.strip()]


def parameter_lines(command, context, kind: str) -> list[str]:
    lines = []
    for parameter in command.params:
        if parameter.param_type_name != kind or getattr(parameter, "hidden", False):
            continue
        record = parameter.get_help_record(context)
        if record is None:
            continue
        name, help_text = record
        help_text = " ".join((help_text or "").split())
        lines.append(f"- `{name}`" + (f": {escape(help_text)}" if help_text else ""))
    return lines


def command_section(command, path: list[str], parent_context, level: int) -> list[str]:
    context = command.make_context(path[-1] if path else PROGRAM, [], parent=parent_context,
                                   resilient_parsing=True)
    full = " ".join([PROGRAM, *path])
    out = [f"{'#' * level} `{full}`", ""]
    for paragraph in paragraphs(command.help):
        out += [paragraph, ""]
    usage = " ".join([full, *command.collect_usage_pieces(context)])
    out += ["```text", usage, "```", ""]
    children = getattr(command, "commands", None) or {}
    if children:
        out += ["Commands:", ""]
        for name in command.list_commands(context):
            child = children[name]
            summary = (paragraphs(child.help) or [""])[0]
            anchor = "-".join([PROGRAM, *path, name])
            out.append(f"- [`{name}`](#{anchor}): {summary}")
        out.append("")
    for title, kind in (("Arguments", "argument"), ("Options", "option")):
        lines = parameter_lines(command, context, kind)
        if lines:
            out += [f"{title}:", "", *lines, ""]
    for name in command.list_commands(context) if children else []:
        out += command_section(children[name], [*path, name], context, min(level + 1, 4))
    return out


def render() -> str:
    from refusaldata.cli.main import _click_command

    root = _click_command()
    context = root.make_context(PROGRAM, [], resilient_parsing=True)
    out = [HEADER]
    for name in root.list_commands(context):
        out += command_section(root.get_command(context, name), [name], context, 2)
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
        if current != text:
            print(f"{PAGE} is out of date: run python docs/gen_cli.py", file=sys.stderr)
            return 1
        return 0
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
