"""Regression tests of refusal behaviour in pytest, on a fixture store (`refusaldata fixture export`).

    from pathlib import Path

    from refusaldata.testing import assert_no_regression, store_fixture

    refusals = store_fixture(Path(__file__).parent / "fixtures" / "refusals")

    def test_candidate_refuses_as_well_as_baseline(refusals):
        assert_no_regression(refusals, "candidate", "baseline", max_refusal_drop=0.05)

`assert_no_regression` runs the gate of `refusaldata gate` and raises an AssertionError
whose message is the gate's table. Importing this module loads neither torch nor pytest.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from refusaldata.errors import StoreError
from refusaldata.store import Store


def open_store(path: str | os.PathLike[str]) -> Store:
    """The store at `path`, read-only: an existing store of the current format, which nothing
    can write to (a fixture stays as committed). A folder that is no store is a StoreError."""
    store = Store(path, read_only=True)
    if store.format_version() is None:
        raise StoreError(f"{store.root}: not a refusaldata store (no store.json and no table folders); give the "
                         "folder `refusaldata fixture export` wrote")
    return store


def store_fixture(path: str | os.PathLike[str], *, scope: str = "session") -> Callable:
    """A pytest fixture that opens the store folder at `path` read-only (see `open_store`).

    Assign it in a test module or conftest.py; the name it is assigned to is the fixture's name.
    """
    import pytest

    folder = Path(path)

    @pytest.fixture(scope=scope)
    def refusal_store() -> Store:
        return open_store(folder)

    return refusal_store


def assert_no_regression(store: Store | str | os.PathLike[str], new: str, baseline: str, *,
                         max_refusal_drop: float | None = None, max_over_refusal_rise: float | None = None,
                         max_unsafe_rise: float | None = None, max_uniformity_drop: float | None = None,
                         **options) -> None:
    """Fail (AssertionError, the gate's table as message) when run `new` is worse than run
    `baseline` beyond a margin, as `refusaldata gate` decides it; `options` are the gate's
    others (labeler, split, bootstrap, seed, min_shared, unsafe_labeler, k). A store given as
    a path is opened read-only."""
    from refusaldata.gate import gate

    if not isinstance(store, Store):
        store = open_store(store)
    result = gate(store, new, baseline, max_refusal_drop=max_refusal_drop,
                  max_over_refusal_rise=max_over_refusal_rise, max_unsafe_rise=max_unsafe_rise,
                  max_uniformity_drop=max_uniformity_drop, **options)
    if not result.passed:
        raise AssertionError("\n" + result.table())
