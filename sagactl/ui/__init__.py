"""``sagactl ui``: a terminal UI for the on-call operator, on Textual (the ``ui`` extra).

    source.py  what the UI shows and does, without Textual: the sagas through the queries
               ``list`` uses, a saga as ``show`` draws it, failure groups, the DLQs peeked,
               and the actions planned and run through sagactl.ops.bulk
    app.py     the Textual application and its main screen: keys, refresh, the actions asked
    screens.py the screens it opens: a saga, failure groups, the DLQs, help, confirmations
    widgets.py what the screens share: saga tables fitted to the width, foreign text as cells

Nothing here is imported unless ``sagactl ui`` runs: no other command loads Textual.

May import: everything below the command line (ops, views, tools, engine, store, transports,
dlq, definitions, the root leaves); never sagactl.cli.
"""
