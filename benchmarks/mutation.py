"""Mutation testing of sagactl's core modules with mutmut, one module at a time, each mutant run
against only the test files that cover that module (docs/mutation-testing.md).

    nice -n 19 python benchmarks/mutation.py sagactl/engine/lease.py      # one module
    nice -n 19 python benchmarks/mutation.py --all                        # every core module, in turn
    python benchmarks/mutation.py --report                                # the table of the last runs

Each run starts from a clean ``mutants/`` (mutmut's work tree), mutates the one module, and
runs, for each mutant, the tests of MODULES[module] that execute the mutated function, with
``-x`` (the first failure kills the mutant). The score is written to
``benchmarks/mutation/<module>.json``; ``--report`` prints the Markdown table that
benchmarks/RESULTS-mutation.md records. A survivor listed in EQUIVALENT (by mutant name, with
the mutated line it must still show, and why no test can tell it apart) is counted as
equivalent instead; a listed mutant whose line changed is reported stale and counted as a
survivor until judged again.

mutmut is configured under ``[tool.mutmut]`` in pyproject.toml (the pytest options every run
uses); this script narrows it to one module and its tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "mutation"

# module -> the narrowest test files that cover it. These modules reach the saga log only through
# the Store protocol (the store modules are not mutated here), so their mutants run against the
# SQLite half of the store-parametrised tests: the PostgreSQL half would run the same lines again.
SQLITE_ONLY = ["-k", "not postgres"]
MODULES: dict[str, list[str]] = {
    "sagactl/engine/lease.py": ["tests/engine/test_lease.py"],
    "sagactl/tools/selectors.py": ["tests/tools/test_selectors.py", *SQLITE_ONLY],
    "sagactl/tools/bulk.py": ["tests/tools/test_bulk.py", *SQLITE_ONLY],
    "sagactl/tools/retention.py": ["tests/tools/test_retention.py", *SQLITE_ONLY],
    "sagactl/dlq/redrive.py": ["tests/dlq/test_redrive.py", *SQLITE_ONLY],
    "sagactl/engine/worker.py": ["tests/engine/test_worker.py", *SQLITE_ONLY],
    "sagactl/engine/driver.py": ["tests/engine/test_driver.py", "tests/engine/test_engine.py", *SQLITE_ONLY],
    "sagactl/engine/control.py": ["tests/engine/test_engine.py", *SQLITE_ONLY],
}

# mutant name -> (the mutated line as `mutmut show` prints it, after "+", stripped; why it is equivalent)
EQUIVALENT: dict[str, tuple[str, str]] = {
    # lease.py
    "sagactl.engine.lease.x_holder_is_dead__mutmut_9": (
        'pid_text = rest.split(":", )[0]',
        "the first field is the same however many more splits follow",
    ),
    "sagactl.engine.lease.x_holder_is_dead__mutmut_12": (
        'pid_text = rest.split(":", 2)[0]',
        "the first field is the same however many more splits follow",
    ),
    "sagactl.engine.lease.x__is_zombie__mutmut_2": (
        'with open(f"/proc/{pid}/stat", encoding=None, errors="replace") as stat:',
        "the locale's codec with errors replaced: the fields after the name are ASCII either way",
    ),
    "sagactl.engine.lease.x__is_zombie__mutmut_5": (
        'with open(f"/proc/{pid}/stat", errors="replace") as stat:',
        "the locale's codec with errors replaced: the fields after the name are ASCII either way",
    ),
    "sagactl.engine.lease.x__is_zombie__mutmut_8": (
        'with open(f"/proc/{pid}/stat", encoding="ASCII", errors="replace") as stat:',
        "codec names are case-insensitive",
    ),
    "sagactl.engine.lease.x__is_zombie__mutmut_23": (
        'return bool(fields) and fields[0] in ("Z", "XXXXX")',
        "state X (dead) is never visible in /proc: the kernel shows it for an instant while it reaps",
    ),
    "sagactl.engine.lease.x__is_zombie__mutmut_24": (
        'return bool(fields) and fields[0] in ("Z", "x")',
        "state X (dead) is never visible in /proc: the kernel shows it for an instant while it reaps",
    ),
    # selectors.py
    "sagactl.tools.selectors.x_read_id_lines__mutmut_6": (
        "interactive = None",
        "None and False are both falsy: a stream that cannot say is not a terminal either way",
    ),
    # bulk.py
    "sagactl.tools.bulk.x_check_job_id__mutmut_9": (
        'if not job_id or len(job_id) > MAX_JOB_ID or not all(c.isalnum() or c in "XX-_.:XX" for c in job_id):',
        "X is alphanumeric: the characters allowed are the same",
    ),
    "sagactl.tools.bulk.x_job_base__mutmut_20": (
        'return "job-" + hashlib.sha256(text.encode("UTF-8", "surrogatepass")).hexdigest()[:8]',
        "codec names are case-insensitive",
    ),
    "sagactl.tools.bulk.x_canonical__mutmut_4": (
        'return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=None)',
        "None is falsy: json.dumps escapes nothing, as with False",
    ),
    # retention.py
    "sagactl.tools.retention.x__prune_state__mutmut_33": (
        'result.archived += _archive(archive, request.archive or "XXXX", store, ids)',
        "an archive is open only when request.archive names it: the fallback is never used",
    ),
    "sagactl.tools.retention.x__prune_state__mutmut_41": (
        "gone = store.delete_finished(ids, PruneQuery(query.before, (state,), None))",
        "the IDs were found with the type filter and a saga's type never changes: the DELETE's type re-check"
        " cannot differ",
    ),
    "sagactl.tools.retention.x__prune_state__mutmut_44": (
        "gone = store.delete_finished(ids, PruneQuery(query.before, (state,), ))",
        "the IDs were found with the type filter and a saga's type never changes: the DELETE's type re-check"
        " cannot differ",
    ),
}

# Tests start sagactl in subprocesses (PYTHONPATH: the mutants/ tree, cwd: a temporary
# directory); the mutated modules there import mutmut, whose config is read from the current
# directory. This file, put in mutants/, hands them the run's config instead.
SITECUSTOMIZE = """
import json, os
_spec = os.environ.get("SAGACTL_MUTATION_SPEC")
if _spec:
    from dataclasses import replace as _replace
    import mutmut.configuration as _configuration
    _spec = json.loads(_spec)
    _here = os.getcwd()
    os.chdir(_spec["root"])
    try:
        _configuration._config = _replace(
            _configuration._load_config(), only_mutate=_spec["only"], pytest_add_cli_args_test_selection=_spec["tests"]
        )
    finally:
        os.chdir(_here)
"""

BOOTSTRAP = """
import json, sys
from dataclasses import replace
import mutmut.configuration as configuration
spec = json.loads(sys.argv[1])
configuration._config = replace(
    configuration._load_config(),
    only_mutate=spec["only"],
    pytest_add_cli_args_test_selection=spec["tests"],
)
from mutmut.__main__ import cli
cli(sys.argv[2:])
"""


def mutmut(module: str, *args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
    """mutmut's command line, configured for ``module`` and its tests."""
    spec = json.dumps({"only": [module], "tests": MODULES[module], "root": str(ROOT)})
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SAGACTL_MUTATION_SPEC": spec}
    return subprocess.run(
        [sys.executable, "-c", BOOTSTRAP, spec, *args],
        cwd=ROOT,
        env=env,
        text=True,
        capture_output=capture,
        check=False,
    )


def mutated_line(module: str, name: str) -> str:
    """The line a mutant changes, as mutmut shows it (first ``+`` line of its diff)."""
    diff = mutmut(module, "show", name, capture=True).stdout
    added = [line[1:].strip() for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    return added[0] if added else ""


def run(module: str, children: int, keep: bool = False) -> dict[str, object]:
    """Mutate ``module``, run its tests against every mutant, return and save its score.
    ``keep``: go on with the mutants an interrupted run of the same module left untested."""
    if not keep:
        shutil.rmtree(ROOT / "mutants", ignore_errors=True)
    (ROOT / "mutants").mkdir(exist_ok=True)
    (ROOT / "mutants" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    started = time.monotonic()
    if children and mutmut(module, "run", "--max-children", str(children)).returncode != 0:
        raise SystemExit(f"mutmut could not run {module} (see above): no score written")
    return collect(module, time.monotonic() - started)


def collect(module: str, elapsed: float) -> dict[str, object]:
    """The score of ``module`` from mutants/ as the last run left it (mutants it did not get to,
    when it was stopped, are counted apart as untested)."""
    listed = mutmut(module, "results", "--all", "true", capture=True).stdout
    prefix = module.removesuffix(".py").replace("/", ".") + "."
    statuses: dict[str, str] = {}
    for line in listed.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name.startswith(prefix):
            statuses[name] = status
    untested = [n for n, s in statuses.items() if s == "not checked"]
    statuses = {n: s for n, s in statuses.items() if s != "not checked"}
    killed = [n for n, s in statuses.items() if s in ("killed", "timeout", "segfault", "caught by type check")]
    timeouts = [n for n, s in statuses.items() if s == "timeout"]
    equivalent, stale, survived = [], [], []
    for name in sorted(statuses):
        if name in killed:
            continue
        if name in EQUIVALENT:
            line = mutated_line(module, name)
            if line == EQUIVALENT[name][0]:
                equivalent.append(name)
                continue
            stale.append(name)
        survived.append(name)
    score = {
        "module": module,
        "tests": MODULES[module],
        "mutants": len(statuses),
        "killed": len(killed),
        "timeouts": len(timeouts),
        "equivalent": len(equivalent),
        "survived": len(survived),
        "survivors": {name: mutated_line(module, name) for name in survived},
        "stale_equivalents": stale,
        "untested": len(untested),
        "seconds": round(elapsed),
    }
    OUT.mkdir(exist_ok=True)
    (OUT / (module.replace("/", "_") + ".json")).write_text(json.dumps(score, indent=2) + "\n")
    return score


def table() -> str:
    """The Markdown table of every module's last score."""
    rows = [
        "| module | tests | mutants | killed (of them by timeout) | equivalent | survived | killed / non-equivalent |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for module in MODULES:
        path = OUT / (module.replace("/", "_") + ".json")
        if not path.exists():
            files = " ".join(t for t in MODULES[module] if t.startswith("tests/"))
            rows.append(f"| `{module}` | {files} | not run | | | | |")
            continue
        s = json.loads(path.read_text())
        # survivors judged equivalent since the run (same name, same mutated line) count as such
        judged = [n for n, line in s["survivors"].items() if n in EQUIVALENT and EQUIVALENT[n][0] == line]
        s["equivalent"] += len(judged)
        s["survived"] -= len(judged)
        live = s["mutants"] - s["equivalent"]
        share = f"{100 * s['killed'] / live:.1f}%" if live else "-"
        if s.get("untested"):
            share += f" of the {s['mutants']} tested; {s['untested']} not reached"
        tests = " ".join(t for t in s["tests"] if t.startswith("tests/"))
        rows.append(
            f"| `{module}` | {tests} | {s['mutants']} | {s['killed']} ({s['timeouts']}) |"
            f" {s['equivalent']} | {s['survived']} | {share} |"
        )
    rows += ["", "Mutants judged equivalent:", ""]
    for name, (line, why) in EQUIVALENT.items():
        rows.append(f"- `{name}`: `{line}`: {why}")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help="modules to mutate (keys of MODULES)")
    parser.add_argument("--all", action="store_true", help="every core module, one after the other")
    parser.add_argument("--report", action="store_true", help="print the table of the last scores")
    parser.add_argument("--children", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--keep", action="store_true", help="continue an interrupted run of one module")
    parser.add_argument(
        "--collect", action="store_true", help="only score what the last (stopped) run of the module left in mutants/"
    )
    args = parser.parse_args()
    chosen = list(MODULES) if args.all else args.modules
    unknown = [m for m in chosen if m not in MODULES]
    if unknown:
        parser.error(f"not a core module: {', '.join(unknown)} (known: {', '.join(MODULES)})")
    for module in chosen:
        score = collect(module, 0.0) if args.collect else run(module, args.children, keep=args.keep)
        print(json.dumps({k: v for k, v in score.items() if k != "survivors"}))
        for name, line in score["survivors"].items():  # type: ignore[union-attr]
            print(f"  survived {name}: {line}")
    if args.report or not chosen:
        print(table())


if __name__ == "__main__":
    main()
