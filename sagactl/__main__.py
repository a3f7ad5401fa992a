"""``python -m sagactl`` and the ``sagactl`` console script."""

from sagactl.cli import main

if __name__ == "__main__":
    main()
