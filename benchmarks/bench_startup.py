"""Start-up time of sagactl beside `python -c "import typer"` (issue 2, Speed).

Runs each command N times (after a warm-up) and prints the median and the ratio to the
typer baseline, then lists which heavy modules each path imported (it must be none).

    python benchmarks/bench_startup.py [-n 30]
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
HEAVY = ("boto3", "botocore", "psycopg", "httpx", "tabulate", "rich", "yaml", "jsonschema")


def timed(argv: list[str], env: dict[str, str], runs: int) -> float:
    subprocess.run(argv, env=env, capture_output=True, check=False)  # warm the page cache
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=False)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


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
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SAGACTL_DSN": f"sqlite:///{tmp}/empty.db", "NO_COLOR": "1"}
        env.pop("SAGACTL_CONFIG", None)
        os.chdir(tmp)
        base = timed([sys.executable, "-c", "import typer"], env, opts.n)
        print(f"{'command':38} {'median':>9} {'ratio':>6}  heavy imports")
        baseline = 'python -c "import typer"'
        print(f"{baseline:38} {base * 1000:8.1f}ms {1.0:6.2f}")
        cases = [
            (["--help"], 2.5),
            (["list", "-o", "json"], 2.0),
            (["show", "nope", "-o", "json"], 2.0),
            (["schema"], 2.0),
        ]
        bare = os.path.join(tmp, "bare.py")
        with open(bare, "w") as handle:
            handle.write(BARE_APP)
        bare_help = timed([sys.executable, bare, "--help"], env, opts.n)
        bare_rich = timed(["script", "-qfec", f"{sys.executable} {bare} --help", "/dev/null"], env, opts.n)
        rich_help = timed(["script", "-qfec", f"{sagactl} --help", "/dev/null"], env, opts.n)
        plain_script = timed(["script", "-qfec", f"{sys.executable} -c 'import typer'", "/dev/null"], env, opts.n)
        print(f"{'bare Typer app --help (pipe)':38} {bare_help * 1000:8.1f}ms {bare_help / base:6.2f}")
        print(
            f"{'bare Typer app --help (terminal: rich)':38} {bare_rich * 1000:8.1f}ms {bare_rich / plain_script:6.2f}"
        )
        print(
            f"{'sagactl --help (on a terminal: rich)':38} {rich_help * 1000:8.1f}ms {rich_help / plain_script:6.2f}"
            "  (vs import typer under the same pty)"
        )
        for args, target in cases:
            took = timed([sagactl, *args], env, opts.n)
            heavy = imported(args, env)
            ratio = took / base
            verdict = "ok" if ratio <= target else f"over {target}x"
            print(
                f"{'sagactl ' + ' '.join(args):38} {took * 1000:8.1f}ms {ratio:6.2f}"
                f"  {', '.join(heavy) or '-'}  ({verdict})"
            )


if __name__ == "__main__":
    main()
