"""Tables that fit a terminal: at 80, 100 and 160 columns each table leaves out (or shortens)
its columns in its stated order before anything folds, only free text folds, and no ID, number
with its unit or time is ever split. Snapshots on a real pseudo-terminal, colour off, for
`stats --steps`, `show`, bulk plans and results, failure groups, `dlq list`, `redrive`,
`doctor` and `config contexts` (`list` has its own, tests/views/test_list_views.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sagactl.aws import QueueRef
from sagactl.dlq.messages import DlqMessage
from sagactl.dlq.outcomes import Action, Outcome, RedriveResult
from sagactl.dlq.peek import PeekResult
from sagactl.models import SagaState, SagaSummary
from sagactl.store.base import JobRecord
from sagactl.store.stepruns import StepTotals
from sagactl.tools.bulk import BulkPlan, PlanItem
from sagactl.tools.contexts import Context, Contexts
from sagactl.tools.doctor import Check, Checks, Status
from sagactl.tools.groups import FailureGroup, GroupBy
from sagactl.tools.inspect import GroupResult
from sagactl.tools.stepstats import StepStats, StepStatsReport
from sagactl.views.bulk import groups_document, plan_document
from sagactl.views.dlq import dlq_messages_document, redrive_document
from sagactl.views.output import Document, emit
from sagactl.views.sagas import sagas_document
from sagactl.views.tools import contexts_document, doctor_document, step_stats_document
from tests.support.histories import failed_saga, stuck_saga
from tests.support.pty import call_on_pty, strip_escapes
from tests.support.sagas import at
from tests.support.snapshots import assert_snapshot

WIDTHS = (80, 100, 160)
IDS = (
    "7f3c9a2e-5b1d-4c8e-9f00-1a2b3c4d5e6f",
    "0b4e7c1a-93d2-4f5e-8a61-2c3d4e5f6a7b",
    "c0ffee00-aaaa-4bbb-8ccc-ddddeeee0001",
)
MESSAGE_IDS = ("4dcec68f-2a40-4f0e-9d0c-5b9bd1d8a111", "a47a2fc1-8e8b-4c35-b0c1-3f0a1e9c2222")


def shown(doc: Document, width: int) -> str:
    """``doc`` as a terminal ``width`` columns wide shows it (escapes stripped)."""
    _, tty = call_on_pty(lambda: emit(doc), size=(width, 80))
    return strip_escapes(tty)


def whole(text: str, *atoms: str) -> None:
    """Each atom is on one line of ``text``, never split over two."""
    for atom in atoms:
        assert atom in text, f"{atom!r} split or missing:\n{text}"


def step_stats() -> Document:
    def totals(step: str, phase: str, runs: int, failed: int, p: tuple[float, float, float]) -> StepTotals:
        return StepTotals("OrderFulfillment", step, phase, runs, runs - failed, failed, 0, runs, runs - failed, 0, 0, p)

    steps = [
        StepStats(totals("reserve_inventory", "action", 5, 0, (0.354, 0.388, 0.394)), 10.0, 30.6),
        StepStats(totals("charge_payment", "action", 5, 1, (0.185, 1.0, 1.25)), 20.0, 61.0),
        StepStats(
            totals("charge_payment", "compensation", 2, 0, (0.305, 0.353, 14.2)),
            10.0,
            41.4,
            flags=["timeout 10s is below the observed p99 14s: more than one run in a hundred needs longer"],
        ),
    ]
    return step_stats_document(StepStatsReport("/var/lib/sagactl/log.db", "2026-11-29T05:53:19.364810Z", None, steps))


@pytest.mark.parametrize("width", WIDTHS)
def test_stats_steps(width: int) -> None:
    text = shown(step_stats(), width)
    assert_snapshot(f"fit-stats-steps-{width}", text)
    whole(text, "388ms", "1.2s", "14s", "reserve_inventory", "compensation", "20.0%")
    if "P50" in text:
        whole(text, "185ms")
    assert ("TIMEOUT%" in text) == (width >= 160) and ("FAILED" in text) == (width >= 100)
    assert "below the observed p99 14s" in text.replace("\n", " ").replace("│", " ").replace("  ", " ") or width < 100


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("kind", ["failed", "stuck"])
@pytest.mark.slow
def test_show_steps_and_transitions(width: int, kind: str) -> None:
    record, now = (failed_saga(), at(40)) if kind == "failed" else (stuck_saga(), at(20))
    from sagactl.views.sagas import show_document

    text = shown(show_document(record, now), width)
    assert_snapshot(f"fit-show-{kind}-{width}", text[text.index("Steps") :])
    history = text[text.index("Transitions") :]
    whole(history, "pending -> executing")
    whole(history, "+0.010s" if width < 100 else "2026-11-26T08:00:00.010000Z")


def test_show_keeps_whole_times_when_they_fit() -> None:
    """AT is shortened to the time since the saga was created only when it must be."""
    text = shown(sagas_document([failed_saga()]), 160)
    assert "2026-11-26T08:00:10.450000Z" in text and "+10.450s" not in text


def summary(n: int) -> SagaSummary:
    return SagaSummary(
        IDS[n % 3] if n < 3 else f"{IDS[n % 3][:-4]}{n:04d}",
        "OrderFulfillment",
        SagaState.COMPENSATING,
        1,
        "charge_payment",
        at(0),
        at(60),
        last_error="charge_payment compensation: exec python3 participants/payment.py refund: exit 75 (transient)",
    )


def plan() -> Document:
    job = JobRecord("job-14878f93", "resume", {"stuck": True}, "refunds fixed, OPS-7", "alice@vm", at(100))
    items = [PlanItem(s.saga_id, s, will="retry the compensation at charge_payment") for s in map(summary, range(3))]
    items.append(PlanItem("0b4e7c1a-0000-4000-8000-000000000009", summary(4), skip="done by this job before"))
    return plan_document(BulkPlan(job, False, "--stuck --group a01935f6", items))


@pytest.mark.parametrize("width", WIDTHS)
def test_bulk_plan(width: int) -> None:
    text = shown(plan(), width)
    assert_snapshot(f"fit-bulk-plan-{width}", text)
    whole(text, *IDS, "0b4e7c1a-0000-4000-8000-000000000009", "job-14878f93")


@pytest.mark.parametrize("width", WIDTHS)
def test_bulk_results(width: int) -> None:
    """What resume, abort and resolve of several sagas print: a saga per row, IDs whole."""
    sagas = [failed_saga(), stuck_saga()]
    sagas[1].saga_id = IDS[1]
    text = shown(sagas_document(sagas), width)
    assert_snapshot(f"fit-bulk-results-{width}", text)
    whole(text, IDS[0], IDS[1])


def groups() -> Document:
    group = FailureGroup(
        "a01935f6",
        {"step": "charge_payment", "error": "charge_payment compensation: exec python<n> participants/payment.py r…"},
        4,
        at(10),
        at(50),
        summary(0),
        list(IDS),
    )
    other = FailureGroup("d288b5f4", {"step": "reserve", "error": "reserve: HTTP <n>"}, 2, at(5), at(8), summary(1))
    result = GroupResult([group, other], (GroupBy.STEP, GroupBy.ERROR), True, 6, at(100))
    return groups_document(result)


@pytest.mark.parametrize("width", WIDTHS)
def test_failure_groups(width: int) -> None:
    text = shown(groups(), width)
    assert_snapshot(f"fit-groups-{width}", text)
    whole(text, "a01935f6", "d288b5f4", "charge_payment")
    if "EXAMPLE" in text:
        whole(text, IDS[0])


def message(n: int) -> DlqMessage:
    return DlqMessage(
        message_id=MESSAGE_IDS[n],
        receipt_handle="r",
        body='{"saga_id": "' + IDS[n] + '", "order_id": "ord-2001", "amount": 42.5, "items": [{"sku": "BOOK-1"}]}',
        system={"SentTimestamp": str(int(at(n * 5).timestamp() * 1000)), "ApproximateReceiveCount": "3"},
        attributes={},
        saga_id=IDS[n],
        step_name="charge_payment",
        command="PaymentService.RefundPayment",
    )


QUEUE = QueueRef("http://127.0.0.1:4566/123456789012/payment-commands-dlq", "payment-commands-dlq")


@pytest.mark.parametrize("width", WIDTHS)
def test_dlq_list(width: int) -> None:
    result = PeekResult(QUEUE, [message(0), message(1)], scanned=2, listed_at=at(20))
    text = shown(dlq_messages_document(result), width)
    assert_snapshot(f"fit-dlq-list-{width}", text)
    whole(text, IDS[0], IDS[1])
    if "MESSAGE" in text:
        whole(text, *MESSAGE_IDS)
    if "AGE" in text:
        whole(text, "20s", "15s")


@pytest.mark.parametrize("width", WIDTHS)
def test_redrive_result(width: int) -> None:
    destination = QueueRef("http://127.0.0.1:4566/123456789012/payment-commands", "payment-commands")
    outcomes = [
        Outcome(message(0), Action.MOVED, "payment-commands", None, "9f0c1d2e-0000-4000-8000-00000000aaaa", 1),
        Outcome(message(1), Action.FAILED, None, "SendMessageBatch refused the entry: AWS.SimpleQueueService.Throttle"),
    ]
    result = RedriveResult(QUEUE, destination, None, False, outcomes, scanned=2, started_at=at(0))
    text = shown(redrive_document(result), width)
    assert_snapshot(f"fit-redrive-{width}", text)
    whole(text, IDS[0], IDS[1])


@pytest.mark.parametrize("width", WIDTHS)
def test_doctor(width: int) -> None:
    checks = Checks(
        [
            Check("config", Status.OK, "none found (./sagactl.yaml, ~/.config/sagactl); no context"),
            Check("store", Status.OK, "sqlite:///.sagactl/saga_log.db (from default) is reachable"),
            Check("schema", Status.OK, "version 8"),
            Check("sqs", Status.FAIL, "cannot reach SQS at http://127.0.0.1:9 (EndpointConnectionError)"),
            Check("definition sample-configs/order-sqs.yaml", Status.OK, "saga OrderFulfillmentSqs, 3 steps, valid"),
            Check("endpoint OrderFulfillmentSqs.inventory", Status.SKIP, "sqs: SQS cannot be used (above)"),
        ]
    )
    text = shown(doctor_document(checks), width)
    assert_snapshot(f"fit-doctor-{width}", text)
    whole(text, "definition sample-configs/order-sqs.yaml", "endpoint OrderFulfillmentSqs.inventory")


@pytest.mark.parametrize("width", WIDTHS)
def test_config_contexts(width: int) -> None:
    found = Contexts(
        Path("sagactl.yaml"),
        "staging",
        [
            Context("staging", True, "postgresql://sagactl@db.staging.internal:5432/orders", None, "eu-west-1", None),
            Context("local", False, "sqlite:///.sagactl/saga_log.db", None, None, "http://127.0.0.1:4566"),
            Context("legacy", False, "postgresql://readonly@db.internal/orders", "orders.saga_instances", None, None),
        ],
    )
    text = shown(contexts_document(found), width)
    assert_snapshot(f"fit-contexts-{width}", text)
    whole(text, "postgresql://sagactl@db.staging.internal:5432/orders", "postgresql://readonly@db.internal/orders")


@pytest.mark.parametrize(
    ("build", "atoms"),
    [
        (step_stats, ("388ms", "1.2s")),
        (plan, IDS),
        (groups, ("a01935f6",)),
    ],
)
def test_no_width_splits_an_atom(build: Callable[[], Document], atoms: tuple[str, ...]) -> None:
    """Between the snapshot widths too: every width from 60 to 170 columns."""
    doc = build()
    for width in range(60, 171, 10):
        whole(shown(doc, width), *atoms)


