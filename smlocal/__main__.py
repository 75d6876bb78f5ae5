"""``python -m smlocal``: the same command line as the ``smlocal`` console script."""

from smlocal.cli import main

main()
