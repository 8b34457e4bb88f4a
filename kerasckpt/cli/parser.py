"""The argparse parser of `kerasckpt` and `main(argv)`: dispatch to a command, errors to exit statuses."""
import argparse
import contextlib
import os
import sys
import warnings

from kerasckpt.errors import CheckpointError
from kerasckpt.cli.errors import EXIT_BAD_INPUT, EXIT_BROKEN_PIPE, CLIError
from kerasckpt.cli.inspect import cmd_inspect
from kerasckpt.cli.verify import cmd_verify
from kerasckpt.cli.diff import cmd_diff
from kerasckpt.cli.convert import cmd_convert
from kerasckpt.cli.ls import cmd_ls


def build_parser():
    """The argparse parser of `kerasckpt` and its five subcommands."""
    from kerasckpt import __version__
    parser = argparse.ArgumentParser(
        prog="kerasckpt",
        description="Inspect, verify, compare, convert and list checkpoints: .keras, .weights.h5, legacy .h5/.hdf5 "
                    "and native checkpoint prefixes (PREFIX.index + PREFIX.data-*).",
        epilog="Exit status: 0 success; 1 damage found (verify, inspect), files differ (diff) or nothing found "
               "(ls --best); 2 bad input (missing file, unknown format, wrong arguments). Output cut short by a reader "
               "such as `head` keeps the answer's status, or 141 when none was known yet.")
    parser.add_argument("--version", action="version", version=f"kerasckpt {__version__}")
    parser.add_argument("--traceback", action="store_true", help="show the Python traceback of an error")
    parser.add_argument("--storage-options", metavar="JSON", type=_json_object, default={},
                        help="fsspec storage_options for URL paths (s3://, gs://, ...), e.g. '{\"anon\": true}'; "
                             "credentials and endpoints also come from the store's usual environment variables")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    p = commands.add_parser("inspect", help="format, metadata, model summary and variables of one checkpoint",
                            description="Show the format, metadata (versions, date, step and epoch where known), the "
                                        "model summary when the file holds an architecture, and a table of variables. "
                                        "Exit status 1 when the file is found damaged (--stats checks everything "
                                        "verify checks but the architecture).")
    p.add_argument("path", help="a .keras/.weights.h5/.h5 file, a checkpoint prefix, or a CheckpointManager "
                                "directory (its latest checkpoint)")
    p.add_argument("--stats", action="store_true", help="also read every value (checksums verified): min, max, mean")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(func=cmd_inspect)

    p = commands.add_parser("verify", help="check every checksum and structural invariant",
                            description="Check every checksum and structural invariant. A directory means every "
                                        "checkpoint in it and in its subdirectories, plus each CheckpointManager state "
                                        "file. Exit status 0 only when everything is intact; 1 when something is "
                                        "damaged; 2 when a PATH is missing, of unknown format or a directory without "
                                        "checkpoints (the other PATHs are still verified).")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files, checkpoint prefixes or directories")
    p.add_argument("--strict", action="store_true", help="also fail files without checksums (written by Keras)")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(func=cmd_verify)

    p = commands.add_parser("diff", help="compare the variables of two checkpoints",
                            description="List variables only in one file, shape/dtype changes and the largest "
                                        "absolute difference per variable. Exit status 0 when every difference is "
                                        "at most --atol (and nothing else changed), else 1.")
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p.add_argument("--atol", type=float, default=0.0, help="largest absolute difference still counted as equal "
                                                           "(default 0: identical)")
    p.add_argument("--model", metavar="FILE", help="a .keras/.h5 model file whose architecture lines up weights-only "
                                                   "files of different formats")
    p.add_argument("--all", action="store_true", help="also list identical variables")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(func=cmd_diff)

    p = commands.add_parser("convert", help="convert between .keras, .weights.h5, legacy .h5 and checkpoint prefixes",
                            description="Convert SRC to the format DST's ending names (.keras, .weights.h5, .h5/.hdf5, "
                                        "anything else: a checkpoint prefix), keeping everything both formats can "
                                        "hold (weights, optimizer state, architecture, compile arguments), then "
                                        "reload DST and check it holds the same values.")
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DST")
    p.add_argument("--model", metavar="FILE", help="a .keras/.h5 model file giving the architecture when SRC holds "
                                                   "weights only")
    p.add_argument("--weights-only", action="store_true", help="write only weights (and optimizer state) to a .h5")
    p.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    p.set_defaults(func=cmd_convert)

    p = commands.add_parser("ls", help="list the checkpoints in a directory, newest first, and the best one",
                            description="List the checkpoints a CheckpointManager, ModelCheckpoint or BackupAndRestore "
                                        "left in a directory, newest first, with the values encoded in file names and "
                                        "which one is best. The epoch (and batch) column is filled only from "
                                        "--template or from the file itself (a BackupAndRestore backup records its "
                                        "epoch), never guessed from a number in a name; without --template a named "
                                        "number (val_loss0.41, acc=0.9) and a bare decimal (the monitored 'value') "
                                        "are read by convention.")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--template", help="the ModelCheckpoint filepath that named the files, e.g. "
                                      "'model.{epoch:02d}-{val_loss:.3f}.keras'; files it does not match show no "
                                      "values (default: values by convention, no epochs)")
    p.add_argument("--monitor", help="the value that decides the best (default: the first one in the names)")
    p.add_argument("--mode", choices=("auto", "min", "max"), default="auto",
                   help="whether the best is the lowest or highest value (auto: highest for accuracy-like names)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--best", action="store_true", help="print only the path of the best checkpoint")
    which.add_argument("--latest", action="store_true", help="print only the path of the newest checkpoint")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(func=cmd_ls)
    return parser


def _silence_stdout():
    """Point stdout at devnull, so that flushing it again at exit cannot fail (Python's docs on SIGPIPE)."""
    with contextlib.suppress(OSError, ValueError):  # a stdout without a descriptor has nothing to flush at exit
        fd = sys.stdout.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)


def _json_object(text):
    import json
    try:
        value = json.loads(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not JSON ({err}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"anon\": true}}', got {text!r}")
    return value


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"kerasckpt: warning: {message}", file=sys.stderr)


def main(argv=None):
    """Run the `kerasckpt` command with `argv` (default: `sys.argv[1:]`); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # --help, --version, or a usage error already printed by argparse
        return exit.code if isinstance(exit.code, int) else EXIT_BAD_INPUT
    args.outcome = None  # a command sets its exit status here before it prints the answer
    from kerasckpt.cli import sources
    sources.STORAGE_OPTIONS.clear()
    sources.STORAGE_OPTIONS.update(args.storage_options)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            code = args.func(args)
        sys.stdout.flush()  # inside the try: a reader that has gone shows up here at the latest
        return code
    except KeyboardInterrupt:
        print("kerasckpt: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `kerasckpt ... | head`: the reader has gone before the output ended
        _silence_stdout()
        return EXIT_BROKEN_PIPE if args.outcome is None else args.outcome
    except (CLIError, CheckpointError, OSError, ValueError, KeyError) as err:
        if args.traceback:
            raise
        message = str(err) if not isinstance(err, KeyError) or isinstance(err, CheckpointError) else \
            (err.args[0] if err.args else repr(err))
        if isinstance(err, OSError) and not isinstance(err, CheckpointError) and err.filename and err.strerror:
            message = f"'{err.filename}': {err.strerror}."
        print(f"kerasckpt {args.command}: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
