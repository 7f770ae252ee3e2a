"""Command-line entry points, one module per command: ``n2prune-info`` (info),
``n2prune-train`` and ``python -m n2prune`` (train), ``n2prune-compact`` (compact),
``n2prune-sensitivity`` (sensitivity); what they share is in common.

Each ``main(argv=None) -> int`` parses arguments and calls one library function, so tests call
them directly. Errors print one line on stderr and return 2 (130 for an interrupted run, as
a shell reports SIGINT); ``--debug`` shows the traceback instead.
"""

from n2prune.cli.common import run_guarded
from n2prune.cli.compact import COMPACT_EPILOG, compact_main
from n2prune.cli.info import info_main
from n2prune.cli.sensitivity import SENSITIVITY_EPILOG, sensitivity_main
from n2prune.cli.train import TRAIN_EPILOG, train_main, train_parser

__all__ = ["COMPACT_EPILOG", "SENSITIVITY_EPILOG", "TRAIN_EPILOG", "compact_main",
           "info_main", "run_guarded", "sensitivity_main", "train_main", "train_parser"]
