"""Write docs/reference/sql.md: the store's tables (refusaldata/schemas.py) and each SQL asset in sql/ with its header.

    python docs/gen_sql.py           # rewrite the page
    python docs/gen_sql.py --check   # exit 1 when the page differs from what sql/ holds now

The tables come from their declarations (columns, types, partition folders, key); the
header of an SQL file is the block of `--` comment lines a file opens with: what the query or macro
returns, its parameters and what it needs. tests/test_docs.py checks that the checked-in
page is current.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SQL = ROOT / "sql"
PAGE = Path(__file__).resolve().parent / "reference" / "sql.md"

# Sections by file-name prefix, in the order a study uses them; a file no prefix claims goes last.
SECTIONS = [
    ("Views and shared macros", ("views", "best_", "normalize", "mine_macros", "attack_macros")),
    ("Prompts", ("prompts_", "augment_", "missing_")),
    ("Generation", ("generate_",)),
    ("Labels, review and judges", ("label_", "rule_", "review_", "judge_")),
    ("Mining", ("mine_",)),
    ("Distillation sets", ("distill_",)),
    ("Training", ("train_",)),
    ("Comparison and capability", ("compare_", "capability_", "claims_")),
]

HEADER = """\
# SQL reference

Every query and macro the toolkit runs is a file in `sql/`, shipped inside the package. Each
opens with a comment that says what it returns, its parameters (`$name`, bound by the
caller) and what it needs. The same files are what `refusaldata sql` and the plain DuckDB
CLI read for the views (`sql/views.sql`); see [Mine patterns with SQL](../tasks/mine.md).
This page is generated from the table declarations and the files by `python docs/gen_sql.py`.
"""


def header_comment(path: Path) -> str:
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("--"):
            break
        lines.append(line[2:].removeprefix(" ").rstrip())
    return "\n".join(lines).strip("\n")


def section_of(name: str) -> str:
    for title, prefixes in SECTIONS:
        if name.startswith(prefixes):
            return title
    return "Other"


def lexicon_section() -> list[str]:
    path = SQL / "refusal_lexicon.csv"
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    columns = ", ".join(f"`{column}`" for column in rows[0])
    return ["## The lexicon", "",
            f"`sql/refusal_lexicon.csv` holds the rule labeler's {len(rows) - 1} refusal phrases, one a row, "
            f"with the columns {columns}: the phrase, where in a response it counts, where it comes from and a note. "
            "`label_rules.sql` reads it.", ""]


def tables_section() -> list[str]:
    from refusaldata.schemas import TABLES

    out = ["## Tables", "",
           "Each table is a view of the same name in `refusaldata sql` and after `.read sql/views.sql`. "
           "Partition folders are `key=value` folders under the table's folder; the key is what identifies a row.",
           ""]
    for spec in TABLES.values():
        folders = "`" + "/".join(f"{folder}=<{column}>" for folder, column in spec.partitions) + "`"
        layout = "one file per partition, replaced as a whole" if spec.replace else "appended part files"
        out += [f"### {spec.name}", "", spec.description, "",
                f"Key: {', '.join(f'`{column}`' for column in spec.key)}. "
                + (f"Partition folders: {folders}; {layout}." if spec.partitions else f"No partitions; {layout}."), "",
                "| column | type |", "|---|---|"]
        for field in spec.schema:
            kind = str(field.type).replace("list<item: ", "list<").replace("|", "\\|")
            out.append(f"| `{field.name}` | `{kind}`{'' if field.nullable else ', not null'} |")
        out.append("")
    return out


def macros_section() -> list[str]:
    """Every macro `refusaldata sql` defines, found on a connection made as it makes one (over an
    empty store), with the file that defines it: the list cannot name a macro that is not there."""
    import re
    import tempfile

    from refusaldata.analyst import analyst_connection
    from refusaldata.store import Store

    defined_in = {}
    for path in sorted(SQL.glob("*.sql")):
        for name in re.findall(r"CREATE OR REPLACE MACRO (\w+)", path.read_text(encoding="utf-8")):
            defined_in.setdefault(name, path.name)
    with tempfile.TemporaryDirectory() as folder:
        con = analyst_connection(Store(Path(folder) / "store"))
        try:
            found = con.execute(
                "SELECT function_name, function_type, parameters FROM duckdb_functions() "
                "WHERE function_type IN ('macro', 'table_macro') AND NOT internal ORDER BY 1").fetchall()
        finally:
            con.close()
    out = ["## Macros", "",
           "Every macro `refusaldata sql` defines, which the DuckDB CLI has too after the statements "
           "`refusaldata sql --print-setup` prints. Each file's header below says what it computes.", "",
           "| macro | returns | defined in |", "|---|---|---|"]
    listed = set()
    for name, kind, parameters in found:  # a macro overloaded by arity is listed once per signature
        if (name, tuple(parameters)) in listed:
            continue
        listed.add((name, tuple(parameters)))
        source = defined_in.get(name, "")
        anchor = source.replace(".", "")
        out.append(f"| `{name}({', '.join(parameters)})` | {'a table' if kind == 'table_macro' else 'a value'} | "
                   + (f"[{source}](#{anchor}) |" if source else "|"))
    return [*out, ""]


def render() -> str:
    files = sorted(SQL.glob("*.sql"))
    grouped: dict[str, list[Path]] = {}
    for path in files:
        grouped.setdefault(section_of(path.name), []).append(path)
    order = [title for title, _ in SECTIONS] + ["Other"]
    out = [HEADER, *tables_section(), *macros_section()]
    for title in order:
        if title not in grouped:
            continue
        out += [f"## {title}", ""]
        for path in grouped[title]:
            comment = header_comment(path)
            out += [f"### {path.name}", ""]
            out += ["```text", comment, "```", ""] if comment else ["(no header comment)", ""]
    out += lexicon_section()
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
        if current != text:
            print(f"{PAGE} is out of date: run python docs/gen_sql.py", file=sys.stderr)
            return 1
        return 0
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
