"""A real PostgreSQL for tests: SAGACTL_TEST_DSN, else the local server on 127.0.0.1:5432,
else a throwaway server from the pgserver wheel. Each session gets a fresh database."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql

LOCAL_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _reachable(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _with_dbname(dsn: str, dbname: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    info["dbname"] = dbname
    return psycopg.conninfo.make_conninfo(**info)


def _as_url(conninfo: str) -> str:
    """A postgresql:// URL (sagactl's --dsn form) for a key=value or URL conninfo."""
    if conninfo.startswith(("postgresql://", "postgres://")):
        return conninfo
    info = psycopg.conninfo.conninfo_to_dict(conninfo)
    user = info.get("user", "postgres")
    password = f":{info['password']}" if info.get("password") else ""
    host = info.get("host", "127.0.0.1")
    port = info.get("port", "5432")
    if host.startswith("/"):
        return f"postgresql://{user}{password}@/{info.get('dbname', 'postgres')}?host={host}&port={port}"
    return f"postgresql://{user}{password}@{host}:{port}/{info.get('dbname', 'postgres')}"


@pytest.fixture(scope="session")
def pg_admin_dsn() -> Iterator[str]:
    """A DSN with rights to create databases."""
    explicit = os.environ.get("SAGACTL_TEST_DSN")
    if explicit:
        yield explicit
        return
    if _reachable(LOCAL_DSN):
        yield LOCAL_DSN
        return
    import pgserver

    with tempfile.TemporaryDirectory(prefix="sagactl-pg-") as data:
        server = pgserver.get_server(data, cleanup_mode="stop")
        try:
            yield _as_url(server.get_uri())
        finally:
            server.cleanup()


@contextmanager
def fresh_database(admin_dsn: str, prefix: str = "sagactl_test") -> Iterator[str]:
    """An empty database of its own (no schema) as a postgresql:// URL, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _as_url(_with_dbname(admin_dsn, name))
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def pg_dsn(pg_admin_dsn: str) -> Iterator[str]:
    """A fresh database for this test session, dropped at the end."""
    with fresh_database(pg_admin_dsn) as dsn:
        yield dsn
