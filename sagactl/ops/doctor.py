"""``doctor``: resolve the settings as every command would, then try each dependency without
changing anything: the saga log (reachable, schema, writable), AWS (region, credential
source, SQS), each given definition (valid, endpoints reachable, sagas in flight on another
version of it)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sagactl.config import Flags
from sagactl.errors import SagactlError, UnavailableError, UsageError
from sagactl.masking import mask_dsn
from sagactl.models import counted
from sagactl.tools.doctor import Checks, Status, definition_changes

if TYPE_CHECKING:
    from sagactl.config import Settings
    from sagactl.definitions.model import SagaDefinition
    from sagactl.definitions.validation import Report
    from sagactl.ops.reach import QueueProber
    from sagactl.store.health import InFlight


@dataclass(frozen=True, slots=True)
class DoctorRequest(Flags):
    """The definition files to check and the flags (or their environment variables) given."""

    files: Sequence[str] = ()


@dataclass(slots=True)
class DoctorReport:
    checks: Checks
    problems: list[str] = field(default_factory=list)  # FILE:LINE:COL lines of invalid definitions


def doctor(request: DoctorRequest, env: Mapping[str, str] | None = None) -> DoctorReport:
    """Every check, in order; never raises for what it checks."""
    from sagactl.definitions.validation import check_file
    from sagactl.ops.reach import QueueProber

    env = os.environ if env is None else env
    report = DoctorReport(Checks())
    checks = report.checks
    try:
        settings = request.settings(env)
    except UsageError as exc:
        checks.add("config", Status.FAIL, exc.one_line(), usage=True)
        return report
    where = str(settings.config_path) if settings.config_path else "none found (./sagactl.yaml, ~/.config/sagactl)"
    context = f"context {settings.context}" if settings.context else "no context"
    checks.add("config", Status.OK, f"{where}; {context}")
    files = [(name, check_file(name)) for name in request.files]
    definitions = [d for _, r in files for d in r.definitions if not r.errors]
    drift = _store_checks(settings, request, checks, [d.name for d in definitions])
    prober = QueueProber(env)
    sqs_ok = _aws_checks(settings, checks, definitions, prober)
    for name, found in files:
        _definition_checks(name, found, checks, report, drift, sqs_ok, settings, env, prober)
    return report


# -- the saga log ------------------------------------------------------------------------------


def _store_checks(
    settings: Settings, request: DoctorRequest, checks: Checks, saga_types: list[str]
) -> dict[str, list[InFlight]] | None:
    """store, schema, writable; the sagas in flight per type (None: the log cannot tell)."""
    from sagactl.config import DEFAULT_DSN
    from sagactl.store import open_reader
    from sagactl.store.base import SCHEMA_VERSION
    from sagactl.store.health import in_flight, postgres_write_problem, sqlite_write_problem
    from sagactl.store.sql import SqlStore

    source = "--dsn / SAGACTL_DSN" if request.dsn else "the config file" if settings.dsn != DEFAULT_DSN else "default"
    shown = mask_dsn(settings.dsn)
    if settings.mapping is not None:
        mapping = settings.mapping
        preset = f", preset {mapping.preset}" if mapping.preset else ""
        shown += (f" table {mapping.table}" if mapping.table else "") + f" (read-only mapped table{preset})"
    sqlite = settings.dsn.startswith("sqlite://") and settings.mapping is None
    path = Path(settings.dsn.removeprefix("sqlite://").removeprefix("/")) if sqlite else None
    if path is not None and not path.exists():
        checks.add("store", Status.WARN, f"{shown} (from {source}) does not exist yet: 'sagactl db init' creates it")
        checks.add("schema", Status.SKIP, "no saga log yet")
        parent = next((p for p in [path.absolute(), *path.absolute().parents] if p.exists()), Path("/"))
        if os.access(parent, os.W_OK | os.X_OK):
            checks.add("writable", Status.OK, f"{parent} lets this user create it")
        else:
            checks.add("writable", Status.FAIL, f"{parent} is not writable for this user: the log cannot be created")
        return None
    drift: dict[str, list[InFlight]] | None = None
    try:
        with closing(open_reader(settings.dsn, settings.mapping)) as reader:
            checks.add("store", Status.OK, f"{shown} (from {source}) is reachable")
            if not isinstance(reader, SqlStore):
                checks.add("schema", Status.SKIP, "a mapped table has no sagactl schema")
                checks.add("writable", Status.SKIP, "a mapped table is only read")
                return None
            version = reader.schema_version()
            if version == SCHEMA_VERSION:
                checks.add("schema", Status.OK, f"version {version}")
            else:
                checks.add(
                    "schema",
                    Status.WARN,
                    f"version {version}, this sagactl writes {SCHEMA_VERSION}: the first write (or 'sagactl db"
                    " init') upgrades it",
                )
            if reader.info.kind == "postgres":
                from sagactl.store.postgres import PostgresStore

                assert isinstance(reader, PostgresStore)
                _writable(checks, postgres_write_problem(reader))
            drift = {name: in_flight(reader, name) for name in dict.fromkeys(saga_types)}
    except UsageError as exc:
        checks.add("store", Status.FAIL, f"{shown}: {exc.one_line()}", usage=True)
        return None
    except UnavailableError as exc:
        checks.add("store", Status.FAIL, f"{exc.one_line()} (DSN from {source})")
        return None
    if path is not None:  # with no other connection open: closing it leaves no -wal/-shm behind
        _writable(checks, sqlite_write_problem(path))
    return drift


def _writable(checks: Checks, problem: str | None) -> None:
    if problem is None:
        checks.add("writable", Status.OK, "a writer could commit (checked without writing)")
    else:
        checks.add("writable", Status.FAIL, problem)


# -- AWS ---------------------------------------------------------------------------------------


def _aws_checks(
    settings: Settings, checks: Checks, definitions: list[SagaDefinition], prober: QueueProber
) -> bool | None:
    """aws region, credentials, sqs; whether SQS answered (None: not checked)."""
    from sagactl.ops.reach import aws_identity

    uses_sqs = any(e.type == "sqs" for d in definitions for e in d.endpoints.values())
    aws = settings.aws
    if not uses_sqs and not (aws.region or aws.profile or aws.endpoint_url):
        checks.add("aws", Status.SKIP, "no sqs endpoint given and no AWS settings")
        return None
    identity = aws_identity(aws)
    if identity.problem:
        checks.add("aws", Status.FAIL, identity.problem, usage=True)
        return False
    if identity.region:
        checks.add("aws region", Status.OK, identity.region)
    else:
        checks.add("aws region", Status.FAIL, "none: pass --region, set AWS_REGION or aws.region in sagactl.yaml")
    profile = f" (profile {aws.profile})" if aws.profile else ""
    if identity.method:
        checks.add("credentials", Status.OK, f"found by botocore's '{identity.method}' provider{profile}")
    else:
        hint = "set AWS_ACCESS_KEY_ID, pass --profile or run aws sso login"
        checks.add("credentials", Status.FAIL, f"none found{profile}: {hint}")
    if not identity.region or not identity.method:
        checks.add("sqs", Status.SKIP, "needs a region and credentials")
        return False
    probe = prober.sqs(aws)
    checks.add("sqs", Status.OK if probe.ok else Status.FAIL, probe.detail)
    return probe.ok


# -- definitions -------------------------------------------------------------------------------


def _definition_checks(
    name: str,
    found: Report,
    checks: Checks,
    report: DoctorReport,
    drift: dict[str, list[InFlight]] | None,
    sqs_ok: bool | None,
    settings: Settings,
    env: Mapping[str, str],
    prober: QueueProber,
) -> None:
    if found.errors:
        report.problems += [str(p) for p in found.errors]
        checks.add(f"definition {name}", Status.FAIL, f"invalid: {counted(len(found.errors), 'problem')}", usage=True)
        return
    for definition in found.definitions:
        steps = len(definition.steps)
        checks.add(f"definition {name}", Status.OK, f"saga {definition.name}, {counted(steps, 'step')}, valid")
        for endpoint in definition.endpoints.values():
            _endpoint_check(definition, endpoint.name, checks, sqs_ok, settings, env, prober)
        _drift_check(definition, checks, None if drift is None else drift.get(definition.name))


def _endpoint_check(
    definition: SagaDefinition,
    name: str,
    checks: Checks,
    sqs_ok: bool | None,
    settings: Settings,
    env: Mapping[str, str],
    prober: QueueProber,
) -> None:
    from sagactl.ops.reach import exec_probe, resolved, sqs_settings, tcp_probe

    endpoint = definition.endpoints[name]
    label = f"endpoint {definition.name}.{name}"
    try:
        config = resolved(endpoint, env)
    except SagactlError as exc:  # a ${env.NAME} that is not set
        checks.add(label, Status.FAIL, f"{endpoint.type}: {exc.one_line()}", usage=True)
        return
    if endpoint.type == "http":
        probe = tcp_probe(str(config.get("url", "")))
    elif endpoint.type == "exec":
        probe = exec_probe(config, definition.base_dir, env)
    elif sqs_ok is False and not (config.get("region") or config.get("endpoint_url")):
        checks.add(label, Status.SKIP, "sqs: SQS cannot be used (above)")
        return
    else:
        aws = sqs_settings(config, settings.aws)
        probes = [prober.queue(str(config[key]), aws) for key in ("queue", "reply_queue")]
        failed = [p for p in probes if not p.ok]
        both = f"{config['queue']}, replies {config['reply_queue']}"
        detail = "; ".join(p.detail for p in failed) if failed else both
        checks.add(label, Status.FAIL if failed else Status.OK, f"sqs: {detail}")
        return
    checks.add(label, Status.OK if probe.ok else Status.FAIL, f"{endpoint.type}: {probe.detail}")


def _drift_check(definition: SagaDefinition, checks: Checks, groups: list[InFlight] | None) -> None:
    label = f"in flight {definition.name}"
    if groups is None:
        checks.add(label, Status.SKIP, "the saga log cannot be read")
        return
    total = sum(g.count for g in groups)
    other = [(g, definition_changes(g.snapshot.get("document") or {}, definition.raw)) for g in groups]
    other = [(g, changes) for g, changes in other if changes]
    if not other:
        checks.add(label, Status.OK, f"{counted(total, 'saga')} in flight, all on this definition" if total else "none")
        return
    count = sum(g.count for g, _ in other)
    first, changes = other[0]
    more = f"; {len(other) - 1} other versions too" if len(other) > 1 else ""
    checks.add(
        label,
        Status.WARN,
        f"{count} of {counted(total, 'saga')} in flight (e.g. {first.example}) run a stored definition that"
        f" differs from this file: {'; '.join(changes[:4])}{more}. They finish on their stored definition",
    )
