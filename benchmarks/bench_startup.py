"""Start-up time of sagactl beside `python -c "import typer"` (issue 2, Speed).

Runs each command N times (after a warm-up) and prints the median and the ratio to the
typer baseline, then lists which heavy modules each path imported (it must be none).
``--against DIR`` also runs each sagactl case from another checkout (e.g. a git worktree of
an older commit, put first on PYTHONPATH), round-robin in the same run, for a side by side.

    python benchmarks/bench_startup.py [-n 30] [--against /path/to/other/checkout]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BARE_APP = """import typer

app = typer.Typer()


@app.command()
def hello(name: str = "world") -> None:
    \"\"\"Say hello.\"\"\"


@app.command()
def bye() -> None:
    \"\"\"Say bye.\"\"\"


app()
"""
ONE_STEP = """saga: One
endpoints:
  local: {type: exec, command: [/bin/true]}
steps:
  - name: only
    endpoint: local
    action: {args: [go]}
"""
HEAVY = ("boto3", "botocore", "psycopg", "httpx", "urllib3", "tabulate", "rich", "yaml", "jsonschema")


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system of the process and what it waited for)."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(process.pid, 0)
    process.returncode = 0  # reaped above
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def timed_together(
    commands: dict[str, list[str]], env: dict[str, str], runs: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall time and median CPU time of each command, run round-robin so drift on a
    shared machine hits all of them alike (CPU time is the steadier figure under load)."""
    for argv in commands.values():  # warm the page cache
        subprocess.run(argv, env=env, capture_output=True, check=False)
    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            wall, cpu = run_once(argv, env)
            walls[name].append(wall)
            cpus[name].append(cpu)
    median = statistics.median
    return {n: median(v) for n, v in walls.items()}, {n: median(v) for n, v in cpus.items()}


def imported(args: list[str], env: dict[str, str]) -> list[str]:
    probe = (
        "import sys, atexit\n"
        f"heavy = set({HEAVY!r})\n"
        "loaded = lambda: sorted({m.split('.')[0] for m in sys.modules} & heavy)\n"
        "atexit.register(lambda: print('\\n'.join(loaded()), file=sys.__stderr__))\n"
        f"sys.argv = ['sagactl', *{args!r}]\n"
        "from sagactl.__main__ import main\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False)
    return [line for line in done.stderr.splitlines() if line in HEAVY]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=30, help="runs per command")
    parser.add_argument("--against", metavar="DIR", help="another checkout to time side by side")
    opts = parser.parse_args()
    # The console script next to this interpreter (not a pyenv shim, which adds its own start-up).
    beside = os.path.join(os.path.dirname(sys.executable), "sagactl")
    sagactl = beside if os.path.exists(beside) else shutil.which("sagactl")
    if sagactl is None:
        sys.exit("sagactl is not installed (pip install -e .)")
    # An installed wheel ships compiled bytecode; an editable install under
    # PYTHONDONTWRITEBYTECODE=1 would compile every module on every start instead.
    package = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sagactl")
    subprocess.run([sys.executable, "-m", "compileall", "-q", package], check=True)
    if opts.against:
        subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(opts.against, "sagactl")], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "SAGACTL_DSN": f"sqlite:///{tmp}/empty.db",
            "NO_COLOR": "1",
            "XDG_CACHE_HOME": f"{tmp}/cache",  # the warm-up run fills the definition cache, as a second run would
        }
        env.pop("SAGACTL_CONFIG", None)
        os.chdir(tmp)
        bare = os.path.join(tmp, "bare.py")
        with open(bare, "w") as handle:
            handle.write(BARE_APP)
        with open(os.path.join(tmp, "one.yaml"), "w") as handle:
            handle.write(ONE_STEP)
        cases = {
            "--help": 2.5,
            "list -o json": 1.8,
            "show nope -o json": 2.0,
            "schema": 2.0,
            "run one.yaml -q": 2.5,  # a 1-step exec saga on the embedded log
        }

        def on_terminal(command: str) -> list[str]:
            return ["script", "-qfec", command, "/dev/null"]

        other = ["env", f"PYTHONPATH={os.path.abspath(opts.against)}"] if opts.against else []
        commands = {
            "import typer": [sys.executable, "-c", "import typer"],
            "import typer (terminal)": on_terminal(f"{sys.executable} -c 'import typer'"),
            "bare Typer app --help": [sys.executable, bare, "--help"],
            "bare Typer app --help (terminal)": on_terminal(f"{sys.executable} {bare} --help"),
            "sagactl --help (terminal)": on_terminal(f"{sagactl} --help"),
            **{f"sagactl {args}": [sagactl, *args.split()] for args in cases},
            **({f"against {args}": [*other, sagactl, *args.split()] for args in cases} if other else {}),
            **({"against --help (terminal)": on_terminal(f"{' '.join(other)} {sagactl} --help")} if other else {}),
        }
        took, cpu = timed_together(commands, env, opts.n)
        print(f"load average before: {os.getloadavg()} on {os.cpu_count()} CPUs")
        base, base_tty = took["import typer"], took["import typer (terminal)"]
        print(
            f"{'command':38} {'median':>9} {'cpu':>8} {'ratio':>6}  heavy imports"
            "  (ratio: to import typer, same kind of stdout)"
        )
        for name, seconds in took.items():
            ratio = seconds / (base_tty if name.endswith("(terminal)") else base)
            line = f"{name:38} {seconds * 1000:8.1f}ms {cpu[name] * 1000:6.1f}ms {ratio:6.2f}"
            args = name.removeprefix("sagactl ")
            if name.startswith("sagactl ") and args in cases:
                heavy = imported(args.split(), env)
                verdict = "ok" if ratio <= cases[args] else f"over {cases[args]}x"
                line += f"  {', '.join(heavy) or '-'}  ({verdict})"
            print(line)


if __name__ == "__main__":
    main()
