"""Failure groups (issue 11 point 1, sagactl/tools/groups.py): the error signature (a property test:
errors that differ only in IDs, numbers, times and hex fold together), stable keys, and
``list --stuck --group-by`` / ``--group KEY`` on both stores and a mapped table."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sagactl.cli import app
from sagactl.config import Settings
from sagactl.errors import UsageError
from sagactl.models import SagaState
from sagactl.ops.sagas import list_groups, list_sagas
from sagactl.store import Store
from sagactl.tools.groups import GroupBy, check_key, group_key, parse_group_by, signature
from sagactl.tools.inspect import ListRequest
from tests.support.sagas import add, at, saga
from tests.tools.test_inspect import mapped, uid  # noqa: F401  (the mapped table fixture)

runner = CliRunner()

# -- the signature ---------------------------------------------------------------------------------

numbers = st.integers(min_value=0, max_value=10**30).map(str)
decimals = st.floats(min_value=0, max_value=1e9, allow_nan=False).map(lambda f: f"{f:.3f}")
uuids = st.uuids().map(str)
times = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1)).map(
    lambda d: d.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")
)
hexes = st.binary(min_size=1, max_size=16).map(lambda b: hashlib.sha1(b).hexdigest())
prefixed = st.integers(min_value=0, max_value=2**64).map(hex)
VALUES = {"n": numbers | decimals, "uuid": uuids, "time": times, "hex": hexes | prefixed}
# error templates as participants write them; {kind} is where a value goes
TEMPLATES = [
    "card {n} declined after {n} retries",
    "order {uuid} not found",
    "payment-svc: timeout at {time} (request {uuid}, attempt {n}/{n})",
    "commit {hex} rejected: lock held by pid {n}",
    "HTTP {n} from http://10.0.{n}.{n}:{n}/orders/{n}: upstream reset",
    "exec python3 charge.py: exit {n}: Traceback ... KeyError: 'sku-{n}'",
    "deadline {time} passed {n}ms ago",
    "{uuid}",
]


@st.composite
def filled_twice(draw: st.DrawFn) -> tuple[str, str, str]:
    """A template and two errors from it with independently drawn values."""
    template = draw(st.sampled_from(TEMPLATES))

    def fill() -> str:
        out, rest = "", template
        while "{" in rest:
            before, _, after = rest.partition("{")
            kind, _, rest = after.partition("}")
            out += before + draw(VALUES[kind])
        return out + rest

    return template, fill(), fill()


@settings(max_examples=300, deadline=None)
@given(filled_twice())
@pytest.mark.slow
def test_errors_that_differ_only_in_ids_numbers_times_and_hex_share_a_signature(case: tuple[str, str, str]) -> None:
    template, one, other = case
    assert signature(one) == signature(other), (template, one, other)
    assert signature(signature(one)) == signature(one)  # masking a signature changes nothing


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_a_signature_is_one_bounded_line(text: str) -> None:
    sig = signature(text)
    assert len(sig) <= 200 and "\n" not in sig and not sig.startswith(" ")


def test_signatures_keep_what_tells_failures_apart() -> None:
    assert signature("card 4242 declined after 3 retries") == "card <n> declined after <n> retries"
    assert signature("order 7f3c1a00-1234-4abc-8def-0123456789ab at 2026-11-26T08:00:01.123Z failed") == (
        "order <uuid> at <time> failed"
    )
    assert signature("hash 9f86d081884c7d659a2feaa0c55ad015 at 0xDEADBEEF") == "hash <hex> at <hex>"
    assert signature("facade deadbeef cafe") == "facade deadbeef cafe"  # words, not values
    assert signature("card declined") != signature("card expired")
    assert signature("x-5, ord-2001") == "x-<n>, ord-<n>"
    assert signature(None) == signature("") == ""


def test_keys_are_stable_and_name_their_fields() -> None:
    # the same group gets this key on every run and every machine (it is printed and typed back)
    assert group_key({"step": "charge", "error": "charge: card <n> declined after <n> retries"}) == "2e41eb43"
    assert group_key({"step": "charge"}) == "f2b9806f"
    assert group_key({"step": "charge", "error": None}) != group_key({"step": "charge"})
    assert parse_group_by(["error,step"]) == parse_group_by(["step", "error"]) == (GroupBy.STEP, GroupBy.ERROR)
    with pytest.raises(UsageError, match="unknown field 'stp'"):
        parse_group_by(["stp"])
    assert check_key(" 2E41EB43 ") == "2e41eb43"
    with pytest.raises(UsageError, match="8 hex characters"):
        check_key("2e41eb4")


# -- groups over a saga log ------------------------------------------------------------------------


@pytest.fixture
def incident(store: Store, store_dsn: str) -> Settings:
    """An outage: three charges declined with varying card numbers, two refunds refused for
    different orders, one notify timeout; one finished saga with the same error (not stuck)."""
    add(
        store,
        saga("c-1", step=1, updated=100, error=f"card 4242 declined (req {uuid.uuid4()})"),
        saga("c-2", step=1, updated=50, error=f"card 17 declined (req {uuid.uuid4()})"),
        saga("c-3", step=1, updated=300, error=f"card 99 declined (req {uuid.uuid4()})"),
        saga("r-1", state=SagaState.COMPENSATING, step=1, updated=200, error="refund of order 1001 refused"),
        saga("r-2", state=SagaState.COMPENSATING, step=1, updated=210, error="refund of order 2002 refused"),
        saga("n-1", step=2, updated=20, error="timeout after 600s", saga_type="Refund"),
        saga("done", state=SagaState.FAILED, step=None, updated=10),
    )
    return Settings(dsn=store_dsn)


def by_key(settings: Settings, *fields: str, **options: object) -> dict[str, dict[str, object]]:
    request = ListRequest(stuck=True, older_than="1s", **options)  # type: ignore[arg-type]
    result = list_groups(settings, request, parse_group_by(fields), now=at(1000))
    return {g.key: g.to_dict() for g in result.groups}


def test_stuck_sagas_fold_by_step_and_error(incident: Settings) -> None:
    result = list_groups(
        incident, ListRequest(stuck=True, older_than="1s"), parse_group_by(["step,error"]), now=at(1000)
    )
    groups = [g.to_dict() for g in result.groups]
    assert [(g["step"], g["error"], g["count"]) for g in groups] == [
        ("charge", "charge: card <n> declined (req <uuid>)", 3),
        ("charge", "charge: refund of order <n> refused", 2),
        ("notify", "notify: timeout after <n>s", 1),
    ]
    charge = groups[0]
    assert charge["key"] == group_key({"step": "charge", "error": "charge: card <n> declined (req <uuid>)"})
    assert sorted(charge["saga_ids"]) == ["c-1", "c-2", "c-3"]  # type: ignore[arg-type]
    assert (charge["oldest_updated_at"], charge["newest_updated_at"]) == (
        "2026-11-26T08:00:50.000000Z",
        "2026-11-26T08:05:00.000000Z",
    )
    assert charge["example_saga_id"] == "c-2" and str(charge["example_error"]).startswith("charge: card 17 declined")
    assert result.total == 6
    # by state and type instead: other keys for other fields
    states = {(g["state"], g["saga_type"]): g["count"] for g in by_key(incident, "state,type").values()}
    assert states == {("compensating", "Order"): 2, ("pending", "Order"): 3, ("pending", "Refund"): 1}


def test_group_key_selects_its_sagas_whatever_the_grouping(incident: Settings) -> None:
    for fields in (["step,error"], ["state"], ["type", "step"], ["error"]):
        for key, group in by_key(incident, *fields).items():
            chosen = list_sagas(incident, ListRequest(stuck=True, older_than="1s", group=key), now=at(1000)).sagas
            assert sorted(r.saga.saga_id for r in chosen) == sorted(group["saga_ids"])  # type: ignore[arg-type]
    assert list_sagas(incident, ListRequest(stuck=True, group="00000000"), now=at(1000)).sagas == []


def test_the_cli_prints_groups(incident: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAGACTL_DSN", incident.dsn)
    charge = group_key({"step": "charge", "error": "charge: card <n> declined (req <uuid>)"})
    result = runner.invoke(app, ["list", "--stuck", "--older-than", "1s", "--group-by", "step,error"])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["GROUP", "SAGAS", "STEP", "ERROR", "SIGNATURE", "OLDEST", "NEWEST", "EXAMPLE"]
    assert lines[1].startswith(f"{charge}  3 ") and "charge: card <n> declined (req <uuid>)" in lines[1]
    assert result.stderr == "sagactl: 6 sagas in 3 groups; act on one with --group KEY\n"
    result = runner.invoke(app, ["list", "--stuck", "--older-than", "1s", "--group-by", "step,error", "-o", "json"])
    data = json.loads(result.stdout)
    assert [g["count"] for g in data] == [3, 2, 1] and result.stderr == ""
    assert set(data[0]) == {
        "key", "step", "error", "count", "oldest_updated_at", "newest_updated_at", "example_saga_id",
        "example_error", "saga_ids",
    }  # fmt: skip
    result = runner.invoke(app, ["list", "--stuck", "--older-than", "1s", "--group", charge, "-q"])
    assert sorted(result.stdout.split()) == ["c-1", "c-2", "c-3"]
    result = runner.invoke(app, ["list", "--stuck", "--group-by", "step", "--limit", "1", "-q"])
    assert result.stdout == group_key({"step": "charge"}) + "\n"


def test_mapped_table_groups(mapped: Settings) -> None:  # noqa: F811
    result = list_groups(mapped, ListRequest(stuck=True), parse_group_by(["state,step,error"]), now=at(1000))
    assert [(g.fields, g.count, g.saga_ids) for g in result.groups] == [  # equal counts: oldest update first
        ({"state": "pending", "step": "reserve", "error": None}, 1, [uid(3)]),
        ({"state": "pending", "step": "refund", "error": "timeout"}, 1, [uid(7)]),
        ({"state": "compensating", "step": "charge", "error": "card declined"}, 1, [uid(1)]),
    ]
    key = result.groups[1].key
    assert [r.saga.saga_id for r in list_sagas(mapped, ListRequest(stuck=True, group=key), now=at(1000)).sagas] == [
        uid(7)
    ]


def test_oldest_and_newest_come_from_the_updates(incident: Settings) -> None:
    groups = by_key(incident, "type")
    refund = next(g for g in groups.values() if g["saga_type"] == "Refund")
    assert refund["oldest_updated_at"] == refund["newest_updated_at"] == "2026-11-26T08:00:20.000000Z"
    assert refund["count"] == 1 and refund["example_saga_id"] == "n-1"
