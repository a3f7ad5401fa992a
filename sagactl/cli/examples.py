"""Two or three real examples at the end of every command's --help (and each group's), by the
command's path. A test parses every one against the command line it documents, so an example
cannot name an option that does not exist. Plain strings only: --help stays fast."""

from __future__ import annotations

ID = "53b98a59-1dca-4ec8-ab9c-d0eaa0b8d662"
SAMPLE = "sample-configs/order.yaml"

# The commands an operator reaches for at 3 a.m., on top of `sagactl --help`: (example, what it does).
AT_3AM = (
    ("sagactl list --stuck", "which sagas are wedged, where"),
    ("sagactl show 7f3c", "why it failed, and a timeline"),
    ("sagactl redrive --dlq payment-dlq --only-open", "replay dead-lettered commands"),
)

# The sections of `sagactl --help` and of the docs' command reference: every command in one.
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("run and drive", ("run", "resume", "resolve", "abort", "rerun", "worker")),
    ("inspect", ("list", "show", "stats", "graph", "validate", "ui")),
    ("dead letters", ("dlq list", "redrive")),
    (
        "admin and config",
        (
            *("doctor", "db init", "db recount", "prune", "monitoring rules", "monitoring dashboard"),
            *("config contexts", "config use-context", "config view", "schema", "completion"),
        ),
    ),
)

EXAMPLES: dict[str, tuple[str, ...]] = {
    "": tuple(example for example, _ in AT_3AM),
    "validate": (
        f"sagactl validate {SAMPLE}",
        "sagactl validate sagas/*.yaml -o json",
    ),
    "run": (
        f"sagactl run {SAMPLE} --input @sample-configs/order-input.json",
        f"sagactl run {SAMPLE} --input '{{\"order_id\": \"ord-1\"}}' --saga-id ord-1 -o json",
        f"sagactl run {SAMPLE} --inputs orders.jsonl",
    ),
    "resume": (
        f"sagactl resume {ID}",
        "sagactl resume --stuck --type OrderFulfillment --dry-run",
        "sagactl resume --stuck --type OrderFulfillment --reason \"payment-svc fixed\" --yes",
    ),
    "show": (
        f"sagactl show {ID}",
        f"sagactl show {ID} -o json | jq '.steps[] | select(.error)'",
    ),
    "list": (
        "sagactl list --stuck",
        "sagactl list --state compensating --type OrderFulfillment -o json",
        "sagactl list --stuck --exit-code -q",
    ),
    "stats": (
        "sagactl stats",
        "sagactl stats --steps --since 7d --type OrderFulfillment",
        "sagactl stats -o prometheus > /var/lib/node_exporter/sagactl.prom",
    ),
    "resolve": (
        f'sagactl resolve {ID} --step charge_payment --reason "refunded by hand, OPS-1234"',
        f'sagactl resolve {ID} --step reserve_inventory --reason "released in the WMS" --out-of-order',
    ),
    "abort": (
        f'sagactl abort {ID} --reason "customer cancelled, OPS-1240"',
        f'sagactl abort {ID} --reason "fraud check failed, OPS-1251" -o json',
    ),
    "rerun": (
        f"sagactl rerun {ID}",
        f"sagactl rerun {ID} --input-patch '{{\"address\": {{\"zip\": \"10115\"}}}}' -o json",
        f"sagactl rerun {ID} --definition sagas/order-v2.yaml --detach",
    ),
    "prune": (
        "sagactl prune --older-than 30d --dry-run",
        "sagactl prune --older-than 30d --archive /var/backups/sagas.jsonl",
        "sagactl prune --older-than 90d --state completed --type OrderFulfillment -o json",
    ),
    "db": ("sagactl db init", "sagactl db recount --dsn postgresql://sagactl@db.internal/orders"),
    "db init": ("sagactl db init", "sagactl db init --dsn postgresql://sagactl@db.internal/orders"),
    "db recount": ("sagactl db recount", "sagactl db recount --context staging -o json"),
    "schema": ("sagactl schema > saga.schema.json", "sagactl schema | jq '.$defs.step.properties | keys'"),
    "completion": (
        "sagactl completion bash > /etc/bash_completion.d/sagactl",
        "sagactl completion zsh > ~/.zfunc/_sagactl",
        "sagactl completion fish > ~/.config/fish/completions/sagactl.fish",
    ),
    "dlq": ("sagactl dlq list payment-commands-dlq", "sagactl dlq list payment-commands-dlq --group-by saga"),
    "dlq list": (
        "sagactl dlq list payment-commands-dlq",
        "sagactl dlq list payment-commands-dlq --group-by error -o json",
    ),
    "redrive": (
        "sagactl redrive --dlq payment-commands-dlq --only-open --rate 50",
        "sagactl list --stuck -q | sagactl redrive --dlq payment-commands-dlq --saga-id - --dry-run",
        "sagactl redrive --dlq payment-commands-dlq --max-redrives 5 --poison-queue payment-poison",
    ),
    "worker": (
        "sagactl worker --concurrency 32 --metrics-port 9464",
        "sagactl worker --type OrderFulfillment --grace 30s",
    ),
    "graph": (
        f"sagactl graph {SAMPLE}",
        f"sagactl graph {SAMPLE} -o dot | dot -Tsvg > order.svg",
    ),
    "doctor": (
        "sagactl doctor",
        f"sagactl doctor {SAMPLE} sample-configs/order-sqs.yaml --context staging",
        "sagactl doctor -o json | jq '.checks[] | select(.status == \"fail\")'",
    ),
    "config": ("sagactl config contexts", "sagactl config use-context staging"),
    "config contexts": ("sagactl config contexts", "sagactl config contexts -o json"),
    "config use-context": ("sagactl config use-context staging", "sagactl config use-context local"),
    "config view": ("sagactl config view", "sagactl config view -o json"),
    "ui": ("sagactl ui", "sagactl ui --context staging --interval 5s", "sagactl ui --allow-actions"),
    "monitoring": ("sagactl monitoring rules > sagactl-rules.yml", "sagactl monitoring dashboard > sagactl.json"),
    "monitoring rules": (
        "sagactl monitoring rules > /etc/prometheus/rules/sagactl.yml",
        "sagactl monitoring rules --runbook-base https://docs.example.com/sagactl/monitoring/",
    ),
    "monitoring dashboard": (
        "sagactl monitoring dashboard > /var/lib/grafana/dashboards/sagactl.json",
        "sagactl monitoring dashboard | jq -r '.panels[].title'",
    ),
}


def overview(usage: str, summary: str) -> str:
    """`sagactl --help`: one 80x24 screen (the 3 a.m. commands on top, then every command by
    section, one line a section); each command's own --help has its options and examples."""
    import textwrap

    width = max(len(example) for example, _ in AT_3AM) + 3
    lines = [usage, "", *textwrap.wrap(summary, 78, initial_indent="  ", subsequent_indent="  "), "", "At 3 a.m.:"]
    lines += [f"  {example.ljust(width)}{what}" for example, what in AT_3AM]
    lines += ["", "Commands (sagactl COMMAND --help: its options and examples):"]
    for title, paths in SECTIONS:
        names: list[str] = []
        groups = [path.split()[0] for path in paths if " " in path]
        for path in paths:  # a group of several commands is named once: `db`, `config`
            name = path.split()[0] if groups.count(path.split()[0]) > 1 else path
            if name not in names:
                names.append(name)
        lines.append(f"  {title:<18}{'  '.join(names)}")
    lines += [
        "",
        "Options:",
        "  --version   Print the version and exit.",
        "  -h, --help  Show this message and exit.",
        "",
        "Every command takes -o json, -q (IDs only) and -v; exit codes: 0 ok, 1 saga",
        "failed, 2 usage, 3 needs attention, 4 unreachable, 130 interrupted.",
    ]
    return "\n".join(lines) + "\n"


def epilog(path: str, *, rich: bool) -> str | None:
    """The Examples section for the command at ``path`` (``"db init"``; ``""`` for sagactl
    itself), written for the help renderer in use: rich reads markup (brackets escaped), Click
    rewraps paragraphs unless they start with \\b."""
    examples = EXAMPLES.get(path)
    if not examples:
        return None
    if rich:
        return "[bold]Examples[/bold]\n" + "\n".join("  " + e.replace("[", "\\[") for e in examples)
    return "\b\nExamples:\n" + "\n".join("  " + e for e in examples)
