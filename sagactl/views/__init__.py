"""What an operator sees: models in, output Documents (and terminal screens) out.

    output.py    every output format in one place, and the one-line messages on stderr
    sagas.py     run, resume, show, list, stats, validate, db recount
    listing.py   list on a terminal and with -o wide: columns dropped before cells fold
    timeline.py  show on a terminal: why it failed, then steps and compensations
    live.py      the live view of a running saga; the screen --follow and --watch redraw
    watch.py     what show --follow and list --watch print as they poll
    bulk.py      failure groups, bulk plans and results
    dlq.py       dlq list, redrive and its progress bar
    history.py   prune
    tools.py     stats --steps, doctor, config
    graph.py     a definition drawn as Mermaid or Graphviz DOT text
    logs.py      transition logging on stderr
    metrics.py   the saga log's metrics as Prometheus families (/metrics, stats -o prometheus)

monitoring/ holds the shipped alert rules and Grafana dashboard (sagactl monitoring).

May import: the root leaves, sagactl.definitions, sagactl.tools and the result records of
sagactl.dlq. Never sagactl.store or sagactl.transports (a view is handed what to show), nor
sagactl.ops or sagactl.cli.
"""
