"""The saga language: what a YAML definition is and whether it is right.

    model.py         the frozen definition (steps, endpoints, retry policies, durations)
    validation.py    reading definition files, every problem as FILE:LINE:COL: message
    placeholders.py  ${input.x}, ${steps.s.result.y}, ${saga_id}, ${env.X:-default}
    schemacache.py   which documents already passed the JSON Schema (saga.schema.json)

May import: the root leaves. Nothing here opens a store, a queue or a terminal.
"""
