"""What every command shares: the parser (N2D2-style single-dash options, one-line errors),
``run_guarded`` (bad input -> one line and exit status 2, Ctrl-C -> 130) and the options
several commands take (-seed, --allow-partial-weights)."""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Callable

from n2prune.seeds import resolve_seed


class Parser(argparse.ArgumentParser):
    """argparse with N2D2-style single-dash long options and one-line errors."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        self.exit(2, f"error: {message} (see {self.prog} -h)\n")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def run_guarded(action: Callable[[], int], debug: bool,
                interrupted: Callable[[], str] = lambda: "interrupted") -> int:
    """Run ``action``; bad input becomes one line on stderr and exit status 2; Ctrl-C prints
    ``interrupted()`` and returns 130."""
    previous = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        return action()
    except KeyboardInterrupt:
        print(interrupted(), file=sys.stderr)
        return 130
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


def add_seed_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("-seed", "--seed", type=int, default=1, metavar="N",
                        help=f"{what} (default 1); 0 picks one from the clock and prints it, "
                        f"as in n2prune-train")


def resolved_seed(seed: int) -> int:
    """-seed as every command reads it (n2prune.seeds); a clock-picked seed is printed."""
    picked = resolve_seed(seed)
    if picked != seed:
        print(f"seed {picked} (picked from the clock: -seed {picked} repeats this)",
              file=sys.stderr)
    return picked


def add_partial_option(parser) -> None:
    parser.add_argument("--allow-partial-weights", action="store_true",
                        help="accept a -w folder missing some cells' files: those cells keep "
                        "their initial weights (a warning names them); refused otherwise")
