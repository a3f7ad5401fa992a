"""Saga IDs as people type them (sagactl/tools/selectors.py): unique prefixes, ambiguous ones, ``-``
for IDs on stdin; on SQLite, PostgreSQL (an index range scan, whatever the database's
collation) and a mapped table (uuid and text ID columns)."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import sql
from typer.testing import CliRunner

from sagactl.cli import app
from sagactl.config import TableMapping
from sagactl.errors import UsageError
from sagactl.models import SagaState
from sagactl.store import Store, open_store
from sagactl.store.listing import prefix_successor
from sagactl.store.mapped import MappedTableStore
from sagactl.store.postgres import PostgresStore
from sagactl.tools.inspect import ListRequest
from sagactl.tools.selectors import (
    AmbiguousIdError,
    Selector,
    expand_stdin,
    read_id_lines,
    resolve_id,
    resolve_ids,
    select,
)
from tests.support.sagas import add, at, saga

runner = CliRunner()


def invoke(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


# -- the range a prefix spans ------------------------------------------------------------------


def test_prefix_successor_edges() -> None:
    assert prefix_successor("7f3c") == "7f3d"
    assert prefix_successor("a\U0010ffff") == "b"
    assert prefix_successor("\U0010ffff\U0010ffff") is None
    assert prefix_successor("\ud7ff") == "\ue000"  # past the surrogates
    assert prefix_successor("é") == "ê"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=6), st.text(min_size=1, max_size=3))
def test_a_string_starts_with_a_prefix_exactly_when_it_is_in_its_range(text: str, prefix: str) -> None:
    upper = prefix_successor(prefix)
    inside = prefix <= text and (upper is None or text < upper)
    assert inside == text.startswith(prefix)
    assert inside == (prefix + text).startswith(prefix) or not text.startswith(prefix)


# -- resolving on both stores -------------------------------------------------------------------

IDS = ["7f3c1a00-aaaa", "7f3c9b00-bbbb", "abc", "abcd", "é-1", "日本-1", "x_1", "x%1"]


@pytest.fixture
def seeded(store: Store) -> Store:
    add(store, *(saga(i) for i in IDS))
    return store


def test_exact_ids_win_and_unique_prefixes_resolve(seeded: Store) -> None:
    assert resolve_id(seeded, "abc") == "abc"  # exact, though "abcd" starts with it too
    assert resolve_id(seeded, "abcd") == "abcd"
    assert resolve_id(seeded, "7f3c1") == "7f3c1a00-aaaa"
    assert resolve_id(seeded, "é") == "é-1"
    assert resolve_id(seeded, "日") == "日本-1"
    assert resolve_id(seeded, "x_") == "x_1"  # _ and % are themselves, never wildcards
    assert resolve_id(seeded, "x%") == "x%1"
    assert resolve_id(seeded, "nope") == "nope"  # nothing: left for the caller's "not found"
    assert resolve_id(seeded, "7F3C1") == "7F3C1"  # a native log compares exactly
    assert resolve_ids(seeded, ["abcd", "7f3c9", "abcd"]) == ["abcd", "7f3c9b00-bbbb"]


def test_a_prefix_range_stops_before_its_successor(seeded: Store) -> None:
    """[prefix, successor): an ID equal to the successor ("7f3d" for "7f3c") does not start
    with the prefix and is not found by it."""
    add(seeded, saga("7f3d"), saga("abd"))
    assert seeded.ids_with_prefix("7f3c", 11) == ["7f3c1a00-aaaa", "7f3c9b00-bbbb"]
    assert seeded.ids_with_prefix("abc", 11) == ["abc", "abcd"]
    assert resolve_id(seeded, "7f3d") == "7f3d"


def test_an_ambiguous_prefix_names_a_bounded_list_of_candidates(seeded: Store) -> None:
    with pytest.raises(AmbiguousIdError) as raised:
        resolve_id(seeded, "7f3c")
    assert raised.value.one_line() == (
        "saga ID prefix '7f3c' is ambiguous: it matches 2 sagas (7f3c1a00-aaaa, 7f3c9b00-bbbb); type more of the ID"
    )
    add(seeded, *(saga(f"many-{n:02d}") for n in range(15)))
    with pytest.raises(AmbiguousIdError) as raised:
        resolve_id(seeded, "many")
    assert raised.value.exit_code == 2
    assert raised.value.one_line() == (
        "saga ID prefix 'many' is ambiguous: it matches 10+ sagas ("
        + ", ".join(f"many-{n:02d}" for n in range(10))
        + ", …); type more of the ID"
    )
    assert (raised.value.prefix, len(raised.value.candidates)) == ("many", 11)  # one range scan of 11 at most
    add(seeded, *(saga(f"ten-{n}") for n in range(10)))
    with pytest.raises(AmbiguousIdError) as raised:
        resolve_id(seeded, "ten")
    assert raised.value.one_line() == (
        "saga ID prefix 'ten' is ambiguous: it matches 10 sagas ("
        + ", ".join(f"ten-{n}" for n in range(10))
        + "); type more of the ID"
    )


# -- stdin --------------------------------------------------------------------------------------


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_ids_on_stdin_one_per_line() -> None:
    assert read_id_lines(io.StringIO(" a \n\n b\na\n\t\n")) == ["a", "b"]
    assert expand_stdin(["x", "-", "y", "-"], io.StringIO("a\nx\n")) == (["x", "a", "y"], True)
    assert expand_stdin(["x"], Tty("")) == (["x"], False)
    with pytest.raises(UsageError, match=r"^no IDs given"):
        read_id_lines(io.StringIO("\n  \n"))
    with pytest.raises(UsageError, match="stdin is a terminal"):
        read_id_lines(Tty("a\n"))


class Unreadable(io.StringIO):
    """A stream without isatty (a pipe wrapper), holding bytes that are not UTF-8."""

    def isatty(self) -> bool:
        raise ValueError("I/O operation on closed file")

    def read(self, size: int | None = -1) -> str:
        raise UnicodeDecodeError("utf-8", b"a\xffb", 1, 2, "invalid start byte")


def test_stdin_that_cannot_be_asked_or_read() -> None:
    class NoTty:
        def read(self) -> str:
            return "a\nb\n"

    assert read_id_lines(NoTty()) == ["a", "b"]  # type: ignore[arg-type]  # no isatty: a pipe
    with pytest.raises(UsageError) as raised:
        read_id_lines(Unreadable())
    assert raised.value.one_line() == "saga IDs on stdin are not UTF-8 text: invalid start byte at byte 1"
    with pytest.raises(UsageError) as raised:
        read_id_lines(Tty("a\n"))
    assert raised.value.one_line() == "- reads saga IDs from stdin, but stdin is a terminal; pipe IDs in, one per line"


EACH_FILTER = (  # every selector of list that a bulk command takes alone
    ListRequest(stuck=True),
    ListRequest(states=(SagaState.PENDING,)),
    ListRequest(saga_type="Order"),
    ListRequest(older_than="1h"),
    ListRequest(since="1h"),
    ListRequest(until="1h"),
    ListRequest(step="charge"),
    ListRequest(error="declined"),
)


def test_a_selector_that_selects_nothing_or_mixes_ids_and_filters_is_refused() -> None:
    with pytest.raises(UsageError) as raised:
        Selector(ids=("a",), request=ListRequest(stuck=True)).check()
    assert raised.value.one_line().startswith(
        "pass saga IDs (or -) or selectors (--stuck, --state, --type, --step, --error, --group, --older-than,"
        " --since, --until), not both; narrow IDs with"
    )
    with pytest.raises(UsageError) as raised:
        Selector().check()
    assert raised.value.one_line() == (
        "name at least one SAGA_ID (or - for IDs on stdin), or select sagas with --stuck, --state, --type,"
        " --step, --error, --group, --older-than, --since or --until; see 'sagactl list --stuck -q'"
    )
    with pytest.raises(UsageError) as raised:
        Selector(request=ListRequest(group="2e41eb43")).check()
    assert raised.value.one_line() == (
        "--group KEY picks a failure group among the sagas the other selectors pick: pass the ones the groups"
        " were listed with; e.g. 'list --stuck --group-by step,error' then '--stuck --group KEY'"
    )
    with pytest.raises(UsageError, match=r"^--group KEY picks"):
        Selector(request=ListRequest(group="2e41eb43", older_than="1h")).check()
    for other in EACH_FILTER:
        if other.older_than is not None:
            continue  # --older-than alone does not name the listing the groups came from
        Selector(request=replace(other, group="2e41eb43")).check()  # among what those pick
    with pytest.raises(UsageError, match=r"^saga ID is empty"):
        Selector(ids=("",)).check()  # an ID no store can hold, refused before any store opens
    Selector(ids=(" padded ", "x" * 300, "tab\there")).check()  # another writer's IDs: looked up, not refused
    with pytest.raises(UsageError, match="--older-than must be positive"):
        Selector(request=ListRequest(older_than="0s")).check()
    for alone in EACH_FILTER:
        selector = Selector(request=alone)
        selector.check()
        assert selector.filtered and not selector.typed, alone


def test_a_selector_as_typed_and_as_recorded() -> None:
    typed = Selector(ids=("s-1", "s-2"))
    assert typed.typed and not typed.filtered and typed.describe() == "s-1 s-2"
    assert typed.to_dict() == {"saga_ids": ["s-1", "s-2"]}
    piped = Selector(ids=tuple(f"s-{n}" for n in range(7)), from_stdin=True)
    assert not piped.typed
    assert piped.describe() == "- (7 IDs from stdin: s-0 s-1 s-2 s-3 s-4 (+2 more))"
    five = Selector(ids=tuple(f"s-{n}" for n in range(5)))
    assert five.describe() == "s-0 s-1 s-2 s-3 s-4"
    six = Selector(ids=tuple(f"s-{n}" for n in range(6)))
    assert six.describe() == "s-0 s-1 s-2 s-3 s-4 (+1 more)"
    filters = Selector(
        request=ListRequest(
            stuck=True,
            states=(SagaState.PENDING, SagaState.COMPENSATING),
            saga_type="Order Fulfillment",
            step="charge",
            error="card declined",
            group="2e41eb43",
            older_than="2h",
            since="24h",
            until="1h",
        )
    )
    assert filters.describe() == (
        "--stuck --state pending --state compensating --type 'Order Fulfillment' --step charge"
        " --error 'card declined' --group 2e41eb43 --older-than 2h --since 24h --until 1h"
    )
    assert filters.to_dict() == {
        "stuck": True,
        "states": ["pending", "compensating"],
        "type": "Order Fulfillment",
        "step": "charge",
        "error": "card declined",
        "group": "2e41eb43",
        "older_than": "2h",
        "since": "24h",
        "until": "1h",
    }


# -- the commands -------------------------------------------------------------------------------


@pytest.fixture
def cli(seeded: Store, store_dsn: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAGACTL_DSN", store_dsn)
    monkeypatch.setenv("USER", "alice")
    for name in ("SAGACTL_CONFIG", "SAGACTL_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    return store_dsn


AMBIGUOUS = (
    "sagactl: error: saga ID prefix '7f3c' is ambiguous: it matches 2 sagas (7f3c1a00-aaaa, 7f3c9b00-bbbb);"
    " type more of the ID\n"
)


@pytest.mark.slow
def test_show_takes_prefixes_and_ids_on_stdin(cli: str) -> None:
    assert invoke("show", "7f3c9", "-q") == (0, "7f3c9b00-bbbb\n", "")
    assert invoke("show", "7f3c", "-q") == (2, "", AMBIGUOUS)
    code, out, err = invoke("show", "nope")
    assert (code, out) == (2, "") and err.startswith("sagactl: error: saga nope not found in ")
    assert invoke("show", "-", "-q", stdin="abcd\n\n7f3c1\n") == (0, "abcd\n7f3c1a00-aaaa\n", "")
    code, out, _ = invoke("show", "-", "-o", "json", stdin="abc\n")
    assert code == 0 and out.startswith("[\n") and '"saga_id": "abc"' in out  # - prints an array
    assert invoke("show", "-", stdin="\n \n") == (
        2,
        "",
        "sagactl: error: no IDs given: stdin held no saga IDs; pipe one saga ID per line, e.g. from 'list -q'\n",
    )
    code, out, err = invoke("show", "é", "abc")  # several: one after the other
    assert code == 0 and out.count("saga:") == 2 and out.index("é-1") < out.index("abc")


@pytest.mark.slow
def test_resume_abort_resolve_take_prefixes(cli: str) -> None:
    assert invoke("resume", "7f3c", "-q") == (2, "", AMBIGUOUS)
    assert invoke("abort", "7f3c", "--reason", "x") == (2, "", AMBIGUOUS)
    assert invoke("resolve", "7f3c", "--step", "reserve", "--reason", "x") == (2, "", AMBIGUOUS)
    # a unique prefix reaches the saga: the engine's own answers name its full ID
    code, _, err = invoke("resolve", "日", "--step", "reserve", "--reason", "x")
    assert code == 2 and "of saga 日本-1 is executing" in err
    code, out, err = invoke("abort", "x_", "--reason", "customer cancelled", "-q")
    assert (code, out) == (3, "x_1\n"), err  # its compensation has no participant here: compensating
    assert "saga x_1 is compensating at reserve" in err


# -- selectors: which sagas a bulk command picks -------------------------------------------------


def test_filters_alone_pick_among_active_sagas(store: Store) -> None:
    """``resume --type Order`` (no --stuck, no --state) never picks a finished saga: nothing is
    left to resume, abort or resolve there. --older-than alone is a selector too."""
    add(
        store,
        saga("run-1", created=0, updated=0),
        saga("run-2", created=1, updated=3000),
        saga("done-1", state=SagaState.COMPLETED, step=None, created=2, updated=0),
        saga("done-2", state=SagaState.FAILED, step=None, created=3, updated=0),
        saga("undo-1", state=SagaState.COMPENSATING, step=1, created=4, updated=0),
        saga("other-1", saga_type="Refund", created=5, updated=0),
    )
    now = at(3600)
    by_type = Selector(request=ListRequest(saga_type="Order"))
    by_type.check()
    picked, missing = select(store, by_type, now)
    assert sorted(s.saga_id for s in picked) == ["run-1", "run-2", "undo-1"] and missing == []
    idle = Selector(request=ListRequest(older_than="30m"))
    idle.check()  # accepted alone
    assert idle.filtered and not idle.typed
    picked, _ = select(store, idle, now)
    assert sorted(s.saga_id for s in picked) == ["other-1", "run-1", "undo-1"]  # run-2 moved 10 min ago
    finished, _ = select(store, Selector(request=ListRequest(states=(SagaState.COMPLETED,))), now)
    assert [s.saga_id for s in finished] == ["done-1"]  # asked for by name: picked


def test_a_selector_sees_every_match_not_lists_default_1000(store: Store) -> None:
    add(store, *(saga(f"n-{i:04d}", created=i) for i in range(1001)))
    picked, _ = select(store, Selector(request=ListRequest(saga_type="Order")), at(2000))
    assert len(picked) == 1001


def test_older_than_alone_is_a_selector_on_the_command_line(cli: str) -> None:
    code, out, err = invoke("resume", "--older-than", "1s", "--dry-run", "-q")
    assert code == 0, err
    assert set(out.split()) == set(IDS)  # every saga here is active and idle since T0


def test_a_saga_named_by_id_and_by_prefix_is_picked_once(seeded: Store) -> None:
    picked, missing = select(seeded, Selector(ids=("7f3c1a00-aaaa", "7f3c1", "7f3c1a")), at(60))
    assert [s.saga_id for s in picked] == ["7f3c1a00-aaaa"] and missing == []
    picked, missing = select(seeded, Selector(ids=("abc", "nope", "abcd", "abc")), at(60))
    assert [s.saga_id for s in picked] == ["abc", "abcd"] and missing == ["nope"]


# -- PostgreSQL: an index range scan under a collation that is not C ------------------------------


def test_postgres_prefix_lookup_is_an_index_range_scan_under_an_icu_collation(pg_admin_dsn: str) -> None:
    name = f"sagactl_icu_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
                " LOCALE 'C.UTF-8'"
            ).format(sql.Identifier(name))
        )
    dsn = pg_admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    try:
        store = PostgresStore(dsn)
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                collation = conn.execute("SELECT datlocprovider FROM pg_database WHERE datname = %s", [name]).fetchone()
                assert collation == ("i",)
                conn.execute("SET session_replication_role = replica")  # no counter triggers: a quick load
                conn.execute(
                    "INSERT INTO saga_log (saga_id, saga_type, state, steps, definition, created_at, updated_at)"
                    " SELECT md5(i::text), 'Order', 'completed', '[]', '{}', now(), now()"
                    " FROM generate_series(1, 10000) AS i"
                )
                conn.execute("ANALYZE saga_log")
                # the primary key (ICU order) cannot serve a prefix; the "C" index serves even LIKE
                like = "\n".join(
                    r[0] for r in conn.execute("EXPLAIN SELECT saga_id FROM saga_log WHERE saga_id LIKE 'c4ca%'")
                )
                assert "saga_log_pkey" not in like and "using saga_log_id_prefix" in like, like
            plan = store.explain_prefix("c4ca")
            assert "Seq Scan" not in plan and "using saga_log_id_prefix" in plan, plan
            assert store.ids_with_prefix("c4ca4238", 11) == ["c4ca4238a0b923820dcc509a6f75849b"]  # md5('1')
        finally:
            store.close()
    finally:
        with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_sqlite_prefix_lookup_searches_the_primary_key(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'log.db'}")
    try:
        from sagactl.store.listing import SQLITE, prefix_statement

        statement, params = prefix_statement("c4ca", 11, SQLITE)
        plan = store._query(f"EXPLAIN QUERY PLAN {statement}", params, "explaining")  # type: ignore[attr-defined]
        assert "USING COVERING INDEX sqlite_autoindex_saga_log_1 (saga_id>? AND saga_id<?)" in str(plan), plan
    finally:
        store.close()


# -- a mapped table: uuid and text ID columns ------------------------------------------------------


@pytest.fixture
def legacy(pg_dsn: str) -> Iterator[str]:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS legacy_ids")
        for table, kind in (("by_uuid", "uuid"), ("by_text", 'text COLLATE "C"')):
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier("legacy_ids", table)))
            conn.execute(
                sql.SQL(
                    "CREATE TABLE {} (id {} PRIMARY KEY, status text NOT NULL, modified timestamptz NOT NULL)"
                ).format(sql.Identifier("legacy_ids", table), sql.SQL(kind))
            )
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} SELECT md5(i::text)::uuid, 'PENDING', now() FROM generate_series(1, 5000) AS i"
                ).format(sql.Identifier("legacy_ids", table))
            )
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier("legacy_ids", table)))
    yield pg_dsn


def mapped(dsn: str, table: str) -> MappedTableStore:
    mapping = TableMapping(
        table=f"legacy_ids.{table}",
        columns={"saga_id": "id", "state": "status", "updated_at": "modified"},
        states={"pending": "PENDING"},
    )
    return MappedTableStore(dsn, mapping)


@pytest.mark.parametrize("table", ["by_uuid", "by_text"])
def test_mapped_prefixes_are_index_range_scans(legacy: str, table: str) -> None:
    store = mapped(legacy, table)
    try:
        one = "c4ca4238-a0b9-2382-0dcc-509a6f75849b"  # md5('1') as a uuid
        assert resolve_id(store, "c4ca42") == one
        assert resolve_id(store, one) == one
        assert resolve_id(store, "nope") == "nope"
        if table == "by_uuid":
            assert resolve_id(store, "C4CA42") == one  # a uuid is read in any case
            assert store.ids_with_prefix("c4ca4238-a0b9-2", 11) == [one]
        else:  # the range stops before the prefix's successor
            with psycopg.connect(legacy, autocommit=True) as conn:
                conn.execute("INSERT INTO legacy_ids.by_text VALUES ('c4cb', 'PENDING', now())")
            assert "c4cb" not in store.ids_with_prefix("c4ca", 11) and store.ids_with_prefix("c4cb", 11) == ["c4cb"]
        with pytest.raises(AmbiguousIdError):
            resolve_id(store, "c")
        store.db._pg.execute("SET enable_seqscan = off")  # a small table: prove the index can serve it
        plan = store.explain_prefix("c4ca")
        assert f"using {table}_pkey" in plan, plan
    finally:
        store.close()
