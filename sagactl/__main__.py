"""``python -m sagactl`` and the ``sagactl`` console script."""

import sys


def main() -> None:
    """Console entry point; ``--version`` alone answers before the command line is loaded."""
    if sys.argv[1:] == ["--version"]:
        from sagactl import __version__

        sys.stdout.write(f"sagactl {__version__}\n")
        return
    from sagactl.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
