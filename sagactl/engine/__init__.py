"""Driving sagas: forward through the steps, back through the compensations, one committed
transition before every call (DESIGN section 3).

    control.py    run, resume, abort, resolve: starting and steering one saga
    driver.py     one saga under its lease, step by step and compensation by compensation
    host.py       what a driver takes from the engine that runs it; a saga put aside (Parked)
    calls.py      what a step sends and what comes back (requests, backoff, answers)
    checks.py     what a saga needs before anything is recorded or sent (input, placeholders)
    traced.py     the spans of a driver's attempts: links between attempts, outcomes
    lease.py      owner IDs, and how to tell that a lease holder on this host is dead
    migration.py  moving an unfinished saga to a new version of its definition
    worker.py     claiming sagas from the log (and SQS replies) with no coordinator
    metrics.py    a worker's Prometheus metrics and its /metrics, /healthz endpoint

May import: the root leaves, sagactl.definitions, the Store protocol (sagactl.store),
sagactl.transports and the Tracing interface (sagactl.tracing, no-op when off). Never
sagactl.views, sagactl.tools, sagactl.ops or sagactl.cli.
"""
