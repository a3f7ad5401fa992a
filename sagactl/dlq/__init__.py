"""Dead-letter queues on SQS: peeking, redriving (by hand or with SQS's own move tasks), the
outcome of each message and the canary that watches redriven sagas come back.

    messages.py  a dead-lettered message as sagactl reads it (saga, step, receive count)
    peek.py      dlq list: every message seen once, none consumed
    redrive.py   moving messages back to their source queue, poison queue past --max-redrives
    tasks.py     StartMessageMoveTask (--native) and its status
    outcomes.py  what became of each redriven message
    canary.py    redrive --canary: the first few sagas watched before the rest are sent

May import: the root leaves (sagactl.aws builds the SQS client) and the Tracing interface
(sagactl.tracing: the canary's watch span). Never sagactl.store,
sagactl.engine, sagactl.views, sagactl.ops or sagactl.cli.
"""
