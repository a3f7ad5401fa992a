"""The operator's tools over a saga log (native or a foreign table), read through the
SagaReader protocol or written through the Store protocol; what they return are models the
views render.

    inspect.py    list, stuck, show and stats; db recount's result
    selectors.py  saga IDs as people type them, and the selectors the bulk commands share
    groups.py     failure groups: sagas folded by step and a normalised error signature
    bulk.py       bulk jobs (resume, abort, resolve, rerun over a selector): plan, job, pace
    retention.py  prune: finished sagas deleted in batches, archived first when asked
    stepstats.py  stats --steps: how each step behaves, and where its configuration fights it
    poll.py       show --follow and list --watch, by polling a reader
    doctor.py     the checks doctor reports
    contexts.py   the contexts of sagactl.yaml (sagactl config)
    monitoring.py what the log tells Prometheus: the snapshot, each type's budget, each step's timeout

May import: the root leaves, sagactl.definitions, sagactl.store (its protocols and records;
a store is opened by sagactl.ops, never here) and the records of sagactl.dlq. Never sagactl.views, sagactl.ops or
sagactl.cli.
"""
