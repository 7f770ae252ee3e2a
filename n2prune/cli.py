"""Command-line entry points: ``n2prune-info`` and ``n2prune-train`` (``python -m n2prune``).

Each ``main(argv=None) -> int`` parses arguments and calls one library function, so tests call
them directly. Errors print one line on stderr and return 2 (1 for an interrupted run);
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Callable, List, Optional

from n2prune import __version__


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def run_guarded(action: Callable[[], int], debug: bool) -> int:
    """Run ``action``; bad input becomes one line on stderr and exit status 2."""
    previous = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        return action()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 1
    except (ValueError, OSError, RuntimeError) as exc:
        if debug:
            raise
        text = str(exc).strip().splitlines() or [type(exc).__name__]
        print(f"error: {text[0]}", file=sys.stderr)
        for more in text[1:]:
            print(f"       {more}", file=sys.stderr)
        return 2
    finally:
        warnings.showwarning = previous


def info_main(argv: Optional[List[str]] = None) -> int:
    """``n2prune-info NET.ini``: one line per cell and the totals, without training."""
    parser = argparse.ArgumentParser(
        prog="n2prune-info", description="Build an N2D2 INI network and describe its cells "
        "(type, inputs, output shape, parameters, pruning) without training.")
    parser.add_argument("ini", metavar="NET.ini", help="N2D2 network file")
    parser.add_argument("-seed", "--seed", type=int, default=0,
                        help="seed of the weight fillers and Random masks (default 0)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"n2prune {__version__}")
    args = parser.parse_args(argv)

    def action() -> int:
        from n2prune.network import load_network
        net = load_network(args.ini, seed=args.seed)
        print("\n".join(net.summary()))
        return 0

    return run_guarded(action, args.debug)
