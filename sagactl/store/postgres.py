"""The team saga log on PostgreSQL (psycopg 3): the same contract as SqliteStore.

Every write is ONE SQL statement (data-modifying CTEs) on an autocommit connection: the saga
row, its transitions and the per-type/state counters commit together in one implicit
transaction and one network round trip; no separate BEGIN/COMMIT messages. Writes by a
driver are conditional on its lease, exactly as in SQLite.

``db init`` runs the versioned files in schema/postgres/ inside one transaction holding an
advisory lock, and records each version in ``sagactl_schema_migrations``: running it twice,
or from several processes at once, is safe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, LiteralString

import psycopg
from psycopg.types.json import Jsonb

from sagactl.codec import compact_json
from sagactl.errors import UnavailableError, UsageError
from sagactl.masking import MASK, MIN_SECRET_LENGTH, mask_dsn
from sagactl.models import Transition, iso
from sagactl.store.base import SCHEMA_VERSION, Claimed, SagaQuery, StoreInfo
from sagactl.store.history import LINK_RERUN, HistoryStore, Run
from sagactl.store.listing import POSTGRES, prefix_statement
from sagactl.store.sql import Row

VERSION_TABLE = "sagactl_schema_migrations"
# pg_advisory_xact_lock key held while migrating ("sagactl" in ASCII): concurrent `db init`
# runs queue up behind each other instead of racing on CREATE ... IF NOT EXISTS.
MIGRATION_LOCK = 0x73616761637469
CONNECT_TIMEOUT = 5

_APPEND_TRANSITIONS: LiteralString = """
    INSERT INTO saga_transitions (saga_id, step_name, old_state, new_state, detail, at)
    SELECT t.doc->>'saga_id', t.doc->>'step_name', t.doc->>'old_state', t.doc->>'new_state',
           t.doc->'detail', (t.doc->>'at')::timestamptz
    FROM {source}, jsonb_array_elements(%(transitions)s) WITH ORDINALITY AS t(doc, ord)
    ORDER BY t.ord
"""

_CREATE: LiteralString = (
    """
WITH ins AS (
    INSERT INTO saga_log (saga_id, saga_type, state, current_step, current_step_name, data, steps,
                          definition, deadline_at, lease_owner, lease_expires_at, last_error,
                          created_at, updated_at, wake_at, rerun_of, traceparent, tracestate)
    VALUES (%(saga_id)s, %(saga_type)s, %(state)s, %(current_step)s, %(current_step_name)s, %(data)s,
            %(steps)s, %(definition)s, %(deadline_at)s, %(lease_owner)s, %(lease_expires_at)s,
            %(last_error)s, %(created_at)s, %(updated_at)s, %(wake_at)s, %(rerun_of)s, %(traceparent)s,
            %(tracestate)s)
    ON CONFLICT (saga_id) DO NOTHING
    RETURNING 1
), logged AS ("""
    + _APPEND_TRANSITIONS.replace("{source}", "ins")
    + """)
SELECT count(*) FROM ins
"""
)

# One statement per commit: the columns that move, only the step records that changed
# (jsonb_set, {steps} below), the new transitions; saga_counts follows by trigger. Never
# data or definition again after the saga's first commit.
_SAVE = (
    """
WITH upd AS (
    UPDATE saga_log SET state = %(state)s, current_step = %(current_step)s,
        current_step_name = %(current_step_name)s, deadline_at = %(deadline_at)s,
        lease_owner = %(lease_owner)s, lease_expires_at = %(lease_expires_at)s,
        last_error = %(last_error)s, updated_at = %(updated_at)s, wake_at = %(wake_at)s{steps}
    WHERE saga_id = %(saga_id)s AND lease_owner = %(owner)s
    RETURNING 1
), logged AS ("""
    + _APPEND_TRANSITIONS.replace("{source}", "upd")
    + """)
SELECT count(*) FROM upd
"""
)


class _IdTaken(Exception):
    """A new saga's ID is taken: leaves a transaction, which rolls it back."""


def _jsonb(value: Any) -> Jsonb:
    return Jsonb(value, dumps=compact_json)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


RETRY_HINT = "check that the server is reachable and retry"


def failed(where: str, doing: str, dsn: str, exc: BaseException, hint: str) -> UnavailableError:
    """``doing`` failed at ``where``: the server's first line, the DSN in it masked."""
    return UnavailableError(f"{where}: {doing} failed: {masked(dsn, first_line(exc))}", hint=hint)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.splitlines()[0].split())


def _password_of(dsn: str) -> str | None:
    try:
        password = psycopg.conninfo.conninfo_to_dict(dsn).get("password")
    except psycopg.Error:
        return None
    return str(password) if password else None


def masked(dsn: str, text: str | None = None) -> str:
    """``text`` (default: the DSN itself) with the DSN's password masked however the DSN is
    written (a URL, valid or not, or ``key=value`` pairs), and every other secret pattern."""
    password = _password_of(dsn)
    out = mask_dsn(dsn, text)
    if password and len(password) >= MIN_SECRET_LENGTH:
        out = out.replace(password, MASK)
    return out


def connect(dsn: str, *, read_only: bool = False) -> psycopg.Connection[tuple[Any, ...]]:
    """An autocommit connection, or UnavailableError: one line, exit 4, password masked.

    A connect timeout of 5 s applies unless the DSN sets ``connect_timeout``.
    """
    try:
        given = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error as exc:
        raise UnavailableError(
            f"invalid PostgreSQL DSN {masked(dsn)}: {masked(dsn, first_line(exc))}",
            hint="use postgresql://user[:password]@host[:port]/dbname",
        ) from None
    extra: dict[str, Any] = {}
    if "connect_timeout" not in given:
        extra["connect_timeout"] = CONNECT_TIMEOUT
    if "application_name" not in given:
        extra["application_name"] = "sagactl"
    try:
        conn = psycopg.connect(dsn, autocommit=True, **extra)
        if read_only:
            # Session default: every statement runs in a read-only transaction, whatever it is.
            conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY; SET TIME ZONE 'UTC'")
    except psycopg.Error as exc:
        raise UnavailableError(
            f"cannot connect to PostgreSQL {masked(dsn)}: {masked(dsn, first_line(exc))}",
            hint="check --dsn / SAGACTL_DSN / the config file, and that the server is reachable",
        ) from None
    return conn


class PostgresStore(HistoryStore):
    """Store on a PostgreSQL database (tables in the connection's search_path).

    ``create``: create or upgrade a missing or outdated schema on open (writing commands).
    Read-only commands pass False and get UnavailableError naming ``sagactl db init`` instead:
    they never run DDL, and never answer "nothing found" from an uninitialised database.
    """

    dialect = POSTGRES

    def __init__(self, dsn: str, *, create: bool = True, progress: Callable[[int, str], None] | None = None) -> None:
        self.dsn = dsn
        self.info = StoreInfo(kind="postgres", location=masked(dsn))
        self._warned: set[str] = set()
        self._conn = connect(dsn)
        try:
            version = self.schema_version()
            self._note_version(version)
            if version > SCHEMA_VERSION:
                raise UnavailableError(
                    f"saga log schema in {self.info.location} is version {version}, newer than this"
                    f" sagactl supports ({SCHEMA_VERSION})",
                    hint="upgrade sagactl",
                )
            if version == 0 and not create:
                raise self._schema_missing(version)
            if create and version < SCHEMA_VERSION:
                self.init_schema(progress)  # writers upgrade; readers read an older schema (migrations only add)
        except BaseException:
            self._conn.close()
            raise

    # -- schema -------------------------------------------------------------------------

    def schema_version(self) -> int:
        """The highest migration applied; 0 when the database was never initialised."""
        with self._db("reading the schema version"):
            try:
                row = self._conn.execute(f"SELECT max(version) FROM {VERSION_TABLE}").fetchone()
            except psycopg.errors.UndefinedTable:
                return 0
        return int(row[0]) if row and row[0] is not None else 0

    def init_schema(self, progress: Callable[[int, str], None] | None = None) -> int:
        with self._db("creating the schema"), self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATION_LOCK])
            self._conn.execute(
                f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version integer PRIMARY KEY,"
                " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            # Every version not recorded yet, in order: one that joined below the highest applied
            # (two changes numbered side by side, merged later) is applied too.
            done = {int(r[0]) for r in self._conn.execute(f"SELECT version FROM {VERSION_TABLE}").fetchall()}
            current = max(done, default=0)
            from sagactl.store.migrations import migrations  # writers only

            for migration in migrations("postgres"):
                if migration.version in done:
                    continue
                if progress is not None:
                    progress(migration.version, migration.name)
                for statement in migration.statements:
                    self._conn.execute(statement.encode("utf-8"))
                self._conn.execute(
                    f"INSERT INTO {VERSION_TABLE} (version, name) VALUES (%s, %s)",
                    [migration.version, migration.name],
                )
                current = max(current, migration.version)
        self._note_version(current)
        return current

    def _schema_missing(self, version: int) -> UnavailableError:
        what = "has no saga_log schema" if version == 0 else f"has saga_log schema version {version}"
        return UnavailableError(
            f"PostgreSQL database {self.info.location} {what} (this sagactl needs {SCHEMA_VERSION})",
            hint="run 'sagactl db init' against it once (safe to repeat)",
        )

    # -- helpers ------------------------------------------------------------------------

    @contextmanager
    def _db(self, doing: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        """Translate database failures into one-line errors with the DSN masked."""
        where = f"PostgreSQL {self.info.location}"
        try:
            yield self._conn
        except psycopg.errors.UndefinedTable:
            raise self._schema_missing(0) from None
        except psycopg.errors.InsufficientPrivilege as exc:
            role = self._role()
            hint = (
                f"run 'sagactl db init' once as a role that may create tables there (not {role})"
                if doing == "creating the schema"
                else f"grant the role it connects as ({role}) SELECT on the saga log tables to read,"
                " and INSERT, UPDATE on them (USAGE on their sequences) to run sagas"
            )
            raise failed(where, doing, self.dsn, exc, hint) from None
        except psycopg.errors.ReadOnlySqlTransaction as exc:
            hint = "connect to the primary (this server or session is read-only)"
            raise failed(where, doing, self.dsn, exc, hint) from None
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise failed(where, doing, self.dsn, exc, RETRY_HINT) from None
        except psycopg.DataError as exc:
            raise UsageError(f"{where} rejected the data while {doing}: {first_line(exc)}") from None

    def _role(self) -> str:
        """The role this connection acts as (for messages about its privileges)."""
        try:
            return str(self._conn.info.user)
        except psycopg.Error:
            return "?"

    def _query(self, statement: str, params: Sequence[Any], doing: str) -> list[tuple[Any, ...]]:
        with self._db(doing) as conn:
            return conn.execute(statement.replace("?", "%s").encode(), params).fetchall()

    def _update(self, statement: str, params: Sequence[Any], doing: str) -> int:
        with self._db(doing) as conn:
            return conn.execute(statement.replace("?", "%s").encode(), params).rowcount

    lock_rows = " FOR UPDATE"

    @contextmanager
    def _transaction(self, doing: str) -> Iterator[Run]:
        with self._db(doing) as conn, conn.transaction():

            def run(statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
                cursor = conn.execute(statement.replace("?", "%s").encode(), params)
                return cursor.fetchall() if cursor.description else []

            yield run

    @contextmanager
    def _counters_locked(self) -> Iterator[Callable[[str], list[tuple[Any, ...]]]]:
        with self._db("recounting the saga counters") as conn, conn.transaction():
            conn.execute("LOCK TABLE saga_counts IN EXCLUSIVE MODE")

            def run(statement: str) -> list[tuple[Any, ...]]:
                cursor = conn.execute(statement.encode())
                return cursor.fetchall() if cursor.description else []

            yield run

    def _decode_json(self, value: Any) -> Any:
        return value  # psycopg decodes jsonb

    def _encode_time(self, value: datetime | None) -> Any:
        return value

    def _decode_time(self, value: Any) -> datetime | None:
        return _utc(value)

    def _encode_json(self, value: Any) -> Any:
        return _jsonb(value)

    @staticmethod
    def _transitions_param(transitions: Sequence[Transition]) -> Jsonb:
        return _jsonb(
            [
                {
                    "saga_id": t.saga_id,
                    "step_name": t.step_name,
                    "old_state": t.old_state,
                    "new_state": t.new_state,
                    "detail": t.detail,
                    "at": iso(t.at),
                }
                for t in transitions
            ]
        )

    # -- writes -------------------------------------------------------------------------

    def _insert(self, row: Row, transitions: Sequence[Transition]) -> bool:
        params = {**row, "transitions": self._transitions_param(transitions)}
        return self._one_statement(_CREATE, params, f"recording saga {row['saga_id']}")

    def _insert_rerun(self, row: Row, transitions: Sequence[Transition], original: str, at: Any) -> bool | None:
        params = {**row, "transitions": self._transitions_param(transitions)}
        link = LINK_RERUN.replace("?", "%s").encode()
        try:
            with self._db(f"recording the rerun of saga {original}") as conn, conn.transaction():
                if conn.execute(link, [row["saga_id"], at, original]).rowcount != 1:
                    return False
                inserted = conn.execute(_CREATE, params).fetchone()
                if inserted is None or inserted[0] != 1:
                    raise _IdTaken  # rolls the link back too
        except _IdTaken:
            return None
        return True

    def _rewrite(self, row: Row, patch: dict[int, Any], transitions: Sequence[Transition], owner: str) -> bool:
        params: dict[str, Any] = {**row, "owner": owner, "transitions": self._transitions_param(transitions)}
        steps = ", steps = %(steps)s" if "steps" in row else ""
        if "definition" in row:  # a saga moved to a new version of its definition
            steps += ", definition = %(definition)s"
        if patch:
            expression = "steps"
            for n, (index, record) in enumerate(patch.items()):
                # the path as one text parameter: psycopg adapts a list slowly (~30 µs a commit)
                expression = f"jsonb_set({expression}, ARRAY[%(path{n})s::text], %(step{n})s)"
                params[f"path{n}"], params[f"step{n}"] = str(index), record
            steps = f", steps = {expression}"
        statement = _SAVE.replace("{steps}", steps).encode()  # its text varies only with the patch's size
        return self._one_statement(statement, params, f"saving saga {row['saga_id']}")

    def _one_statement(self, statement: LiteralString | bytes, params: dict[str, Any], doing: str) -> bool:
        """Run a write CTE that reports how many saga rows it wrote; True when it wrote one."""
        with self._db(doing) as conn:
            row = conn.execute(statement, params).fetchone()
        return row is not None and row[0] == 1

    def claim(
        self, owner: str, until: datetime, now: datetime, limit: int, types: Sequence[str] = ()
    ) -> list[Claimed]:
        due, lapsed, values = self._claim_parts(types)
        statement = (
            f"WITH due AS ({due} FOR UPDATE SKIP LOCKED), lapsed AS ({lapsed} FOR UPDATE SKIP LOCKED),"
            " chosen AS (SELECT * FROM (SELECT * FROM due UNION ALL SELECT * FROM lapsed) AS c ORDER BY at LIMIT ?)"
            " UPDATE saga_log AS s SET lease_owner = ?, lease_expires_at = ?, wake_at = NULL FROM chosen"
            " WHERE s.saga_id = chosen.saga_id RETURNING s.saga_id, chosen.lapsed, chosen.at"
        )
        params = [now, *values, limit, now, *values, limit, limit, owner, until]
        rows = sorted(self._query(statement, params, "claiming sagas"), key=lambda r: (r[2], r[0]))
        return [Claimed(str(r[0]), bool(r[1])) for r in rows]

    def explain_list(self, query: SagaQuery, *, analyze: bool = True) -> str:
        """EXPLAIN (ANALYZE, BUFFERS) of ``list_sagas(query)``: proof of the index scan."""
        return self._explain(*self.list_statement(query), analyze=analyze)

    def explain_prefix(self, prefix: str, limit: int = 11) -> str:
        """EXPLAIN (ANALYZE, BUFFERS) of ``ids_with_prefix``: proof of the index range scan."""
        return self._explain(*prefix_statement(prefix, limit, self.dialect))

    def _explain(self, statement: str, params: list[Any], *, analyze: bool = True) -> str:
        options = "ANALYZE, BUFFERS" if analyze else "COSTS"
        rows = self._query(f"EXPLAIN ({options}) {statement}", params, "explaining a query")
        return "\n".join(str(r[0]) for r in rows)

    def close(self) -> None:
        self._conn.close()
