"""The exit statuses of `kerasckpt` and `CLIError`, bad input reported without a traceback."""

EXIT_OK, EXIT_NO, EXIT_BAD_INPUT = 0, 1, 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a command killed by a closed pipe


class CLIError(Exception):
    """Bad input the command cannot work with; printed without a traceback, exit status 2."""
