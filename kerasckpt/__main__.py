"""`python -m kerasckpt` and the `kerasckpt` console script: see `kerasckpt.cli`."""
import sys


def main(argv=None):
    """Run the command line tool; returns the exit status (the console script exits with it)."""
    from kerasckpt.cli import main as run
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
