"""The exit statuses of `kerasckpt` and `CLIError`, bad input reported without a traceback."""

EXIT_OK, EXIT_NO, EXIT_BAD_INPUT = 0, 1, 2


class CLIError(Exception):
    """Bad input the command cannot work with; printed without a traceback, exit status 2."""
