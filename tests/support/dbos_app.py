"""A small DBOS Transact application, run by tests in a process of its own, writing real
workflows into a DBOS system database (``postgresql://…`` or ``sqlite:///…``):

    python dbos_app.py URL run          3 orders that succeed, 2 that raise (pickled errors),
                                        1 that raises with portable_json serialization
    python dbos_app.py URL enqueue      (a DBOSClient) 1 order ENQUEUED on a queue no worker
                                        serves, 1 DELAYED an hour
    python dbos_app.py URL hang READY   an order whose first step finishes and whose second
                                        step touches READY and waits: the test kills it there

Each prints the workflow IDs it started, one per line, as ``kind id``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from dbos import DBOS, DBOSClient, DBOSConfig, WorkflowSerializationFormat


class CardDeclinedError(ValueError):
    """A participant's definitive refusal."""


def launch(url: str) -> None:
    config: DBOSConfig = {"name": "sagactl-orders", "system_database_url": url, "executor_id": "orders-1"}
    DBOS(config=config)


@DBOS.step()
def reserve(order: int) -> int:
    return order * 10


@DBOS.step()
def charge(order: int) -> int:
    if order % 2:
        raise CardDeclinedError(f"card declined for order {order}")
    return order


@DBOS.step()
def wait_forever(ready: str) -> None:
    Path(ready).write_text("in the step\n")
    while True:
        time.sleep(1)


@DBOS.workflow(name="order")
def order(number: int) -> int:
    return reserve(number) + charge(number)


@DBOS.workflow(name="portable_order", serialization_type=WorkflowSerializationFormat.PORTABLE)
def portable_order(number: int) -> int:
    return reserve(number) + charge(number)


@DBOS.workflow(name="slow_order")
def slow_order(number: int, ready: str) -> int:
    reserve(number)
    wait_forever(ready)
    return number


def main(url: str, action: str, *rest: str) -> None:
    if action == "enqueue":
        client = DBOSClient(system_database_url=url)
        try:
            queued = client.enqueue({"workflow_name": "order", "queue_name": "no-worker"}, 8)
            print("enqueued", queued.get_workflow_id(), flush=True)
            delayed = client.enqueue({"workflow_name": "order", "queue_name": "no-worker", "delay_seconds": 3600}, 9)
            print("delayed", delayed.get_workflow_id(), flush=True)
        finally:
            client.destroy()
        return
    launch(url)
    DBOS.launch()
    try:
        if action == "run":
            for number in (2, 4, 6):
                handle = DBOS.start_workflow(order, number)
                handle.get_result()
                print("succeeded", handle.get_workflow_id(), flush=True)
            for workflow, number in ((order, 1), (order, 3), (portable_order, 5)):
                handle = DBOS.start_workflow(workflow, number)
                try:
                    handle.get_result()
                except ValueError:
                    print("raised", handle.get_workflow_id(), flush=True)
        elif action == "hang":
            handle = DBOS.start_workflow(slow_order, 7, rest[0])
            print("hanging", handle.get_workflow_id(), flush=True)
            handle.get_result()  # never returns: the test kills this process mid-step
    finally:
        DBOS.destroy()


if __name__ == "__main__":
    main(*sys.argv[1:])
