"""``python -m smlocal``: the same command line as the ``smlocal`` console script."""

from smlocal.cli import main

if __name__ == "__main__":
    main()
