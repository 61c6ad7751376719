"""The Python entry for analysts: `refusaldata.open(path)`, with the command line's defaults.

Everything returns a DuckDB relation, so a result is a polars frame (`.pl()`), a pandas
frame (`.df()`), Arrow (`.to_arrow_table()`) or rows (`.fetchall()`), and can be queried further
with SQL. The defaults are the CLI's: mining reads `best` labels (a human verdict where
one exists, else the default labeler's), `label` writes the default labeler's.
"""

from __future__ import annotations

import os

import duckdb
import pyarrow as pa

from refusaldata import analyst
from refusaldata.labelers.registry import BEST, DEFAULT_LABELER
from refusaldata.store import Store


class Analysis:
    """A store opened for analysis: SQL over its views and macros, the mining queries, labelling.

    Queries read the store as it was when the first one ran; `label` (or `refresh`) makes
    the next query see what was written since. Results stay usable after either, as long
    as the Analysis itself is kept (older DuckDB closes a connection with its owner).
    """

    def __init__(self, store: Store):
        self.store = store
        self._con: duckdb.DuckDBPyConnection | None = None

    def __repr__(self) -> str:
        return f"refusaldata.open({str(self.store.root)!r})"

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection the queries run on: every table a view, every macro of the SQL reference."""
        if self._con is None:
            self._con = analyst.analyst_connection(self.store)
        return self._con

    def refresh(self) -> None:
        """Read the store's files again at the next query (relations already returned keep theirs)."""
        self._con = None

    def sql(self, query: str, params: dict | list | None = None) -> duckdb.DuckDBPyRelation:
        """A DuckDB relation of `query`'s last statement (those before it run first); `$name` or
        `?` parameters of that statement bound from `params`."""
        statements = duckdb.extract_statements(query)
        for statement in statements[:-1]:
            self.connection.execute(statement.query).fetchall()
        return self.connection.sql(statements[-1].query if statements else query, params=params)

    def _relation(self, table: pa.Table) -> duckdb.DuckDBPyRelation:
        return self.connection.from_arrow(table)

    def rates(self, by: str = "run", runs: list[str] | None = None, labeler: str = BEST) -> duckdb.DuckDBPyRelation:
        """Refusal, over-refusal (and unsafe) rates with Wilson 95% intervals per run, or per run and
        `by` (dataset, category or attack): `refusaldata mine rates`."""
        from refusaldata import mine

        return self._relation(mine.rates(self.store, runs, by, labeler))

    def openings(self, k: int = 5, top: int = 10, runs: list[str] | None = None,
                 labeler: str = BEST) -> duckdb.DuckDBPyRelation:
        """The `top` most frequent refusal openings of `k` words per run: `refusaldata mine openings`."""
        from refusaldata import mine

        return self._relation(mine.openings(self.store, runs, k, top, labeler))

    def uniformity(self, k: int = 5, runs: list[str] | None = None, labeler: str = BEST) -> duckdb.DuckDBPyRelation:
        """How uniform each run's refusals are: `refusaldata mine uniformity`."""
        from refusaldata import mine

        return self._relation(mine.uniformity(self.store, runs, k, labeler))

    def runs(self) -> duckdb.DuckDBPyRelation:
        """Every run with its name, source and counts: `refusaldata runs`."""
        from refusaldata.runs import list_runs

        return self._relation(list_runs(self.store))

    def tables(self) -> duckdb.DuckDBPyRelation:
        """Every table with its rows, files and size: `refusaldata tables`."""
        return self._relation(analyst.table_summary(self.store))

    def label(self, labeler: str = DEFAULT_LABELER, runs: list[str] | None = None,
              force: bool = False) -> duckdb.DuckDBPyRelation:
        """Label the runs' responses not yet labelled by `labeler` (every run when none is named):
        `refusaldata label`. One summary row per run; later queries see the new labels."""
        from refusaldata.label import label

        summary = label(self.store, runs, labeler, force)
        self.refresh()
        return self._relation(summary)

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> Analysis:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_store(path: str | os.PathLike[str] | None = None) -> Analysis:
    """The store at `path` (default: $REFUSALDATA_STORE, else ./parquet_cache) opened for analysis."""
    return Analysis(Store(path))
