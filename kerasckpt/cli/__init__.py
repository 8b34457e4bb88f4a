"""The `kerasckpt` command: inspect, verify, diff, convert and list checkpoints of every format kerasckpt reads.

Exit status: 0 success; 1 the answer is "no" (damage found, files differ, no such checkpoint); 2 bad input.
"""
from kerasckpt.cli.errors import EXIT_BAD_INPUT, EXIT_NO, EXIT_OK, CLIError
from kerasckpt.cli.ls import template_regex
from kerasckpt.cli.parser import build_parser, main
from kerasckpt.cli.sources import (FORMAT_NAMES, SHORT_NAMES, H5FileSource, KerasSource, NativeSource, Source,
                                   open_source, resolve)

__all__ = ["main", "build_parser", "CLIError", "EXIT_OK", "EXIT_NO", "EXIT_BAD_INPUT", "FORMAT_NAMES", "SHORT_NAMES",
           "Source", "NativeSource", "H5FileSource", "KerasSource", "open_source", "resolve", "template_regex"]
