"""refusaldata: study and align how language models refuse harmful requests.

The library never imports the CLI (refusaldata.cli); the CLI is a thin layer over it.
"""

__version__ = "0.1.0"


def open(path=None):  # noqa: A001 (refusaldata.open, as duckdb.connect: the package's one entry)
    """The store at `path` (default: $REFUSALDATA_STORE, else ./parquet_cache) opened for analysis,
    with the command line's defaults: `.sql(query)`, `.rates(by=...)`, `.openings(k=...)`,
    `.label(...)`, each a DuckDB relation (`.pl()`, `.df()`). See refusaldata.api.Analysis.

    Imported here only when called, so `import refusaldata` stays light.
    """
    from refusaldata.api import open_store

    return open_store(path)
