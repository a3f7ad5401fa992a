"""Shared fixtures: stores (SQLite and PostgreSQL), clocks, participants, SQS."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sagactl.store import Store, open_store

pytest_plugins = ["tests.support.postgres", "tests.support.participants", "tests.support.sqs"]

STORE_KINDS = ["sqlite", "postgres"]


def _truncate_postgres(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE saga_log, saga_transitions, saga_counts, saga_jobs RESTART IDENTITY")


@pytest.fixture(scope="session", autouse=True)
def cache_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """sagactl's cache (validated definitions) in a directory of the session's, not ~/.cache;
    subprocesses inherit it."""
    path = tmp_path_factory.mktemp("cache")
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(path)
    yield path
    if before is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = before


@pytest.fixture(params=STORE_KINDS)
def store_dsn(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A DSN for an empty, initialised saga log of each kind."""
    if request.param == "sqlite":
        dsn = f"sqlite:///{tmp_path / 'saga_log.db'}"
        open_store(dsn).close()  # read-only commands refuse a log that does not exist
        return dsn
    dsn: str = request.getfixturevalue("pg_dsn")
    store = open_store(dsn)
    store.init_schema()
    store.close()
    _truncate_postgres(dsn)
    return dsn


@pytest.fixture
def store(store_dsn: str) -> Iterator[Store]:
    """An empty saga log of each kind (the contract suite and engine tests run on both)."""
    opened = open_store(store_dsn)
    try:
        yield opened
    finally:
        opened.close()
