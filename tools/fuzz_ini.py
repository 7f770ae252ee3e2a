"""Fuzz the INI reader and network builder with mutated real INI files.

Each mutant of a real file (ours in networks/, N2D2's in ../shared/n2d2-models) is loaded and
built in this process under bounds: a CPU-time alarm per mutant (``--timeout``), an address-
space limit for the whole run (``--memory``), and ``build_network(max_elements=...)``. Only a
ConfigError may escape, and it must be located (a path and a line). Mutations are drawn from a
seeded generator, so a failure is reproduced by its seed and index:

    python tools/fuzz_ini.py --count 2000 --seed 1          # the long run
    python tools/fuzz_ini.py --count 120 --seed 0 --json    # what tests/test_fuzz_ini.py runs

Prints one line per failure (file, mutant index, mutation, exception) and a summary; exit 1 when
something other than a located ConfigError escaped or a bound was hit.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import shutil
import signal
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Values that have broken parsers before: huge, infinite, negative, empty, syntax openers.
HOSTILE = ["0", "-1", "99999999999999999999999", "1e999", "-1e999", "nan", "inf", "2147483648",
           "4294967296", "1e12", "", " ", "$(", "$()", "${", "${X}", "[", "[sp]", "[sp]SizeX",
           "{{", "{%", "{% for i in range(1e9) %}", "\\", "\"", ";", "#", "$(1/0)", "$(9**9**9)",
           "$(" * 50, "[a]" * 50, "x" * 5000, "\x00", "\udcff", "1,000", "0x10", "true",
           "{% for i in range(1e9) %}{% endfor %}", "{% block N %}{% endblock %}",
           "{% include /dev/zero %}", "[t@/dev/zero]", "$(" + "(" * 200 + ")" * 200 + ")"]
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])")


class Timeout(Exception):
    """A mutant took longer than its time bound."""


Case = Tuple[Path, Path]  # (INI file to load, file to mutate: itself or a template it uses)


def corpus(shared: Optional[Path]) -> List[Case]:
    """Real INI files (ours, then N2D2's when ../shared is there), and each template paired
    with the first INI file that uses it."""
    files = sorted((ROOT / "networks").glob("*.ini"))
    templates = sorted((ROOT / "networks").glob("**/*.tpl"))
    if shared is not None and shared.is_dir():
        files += sorted(shared.glob("**/*.ini"))
        templates += sorted(shared.glob("**/*.tpl"))
    cases: List[Case] = [(path, path) for path in files]
    for template in templates:
        user = next((path for path in files if path.parent == template.parent
                     or path.parent == template.parent.parent
                     if template.name in path.read_text(errors="replace")), None)
        if user is not None:
            cases.append((user, template))
    return cases


def _lines(text: str) -> List[str]:
    return text.split("\n")


def mutate(text: str, rng: random.Random) -> Tuple[str, str]:
    """One random mutation of ``text``: (new text, description)."""
    lines = _lines(text)
    index = rng.randrange(len(lines))
    line = lines[index]
    kind = rng.choice(["value", "number", "key", "delete", "duplicate", "swap", "insert",
                       "truncate", "bytes", "header"])
    if kind == "value" and "=" in line:
        lines[index] = line.split("=", 1)[0] + "=" + rng.choice(HOSTILE)
    elif kind == "number" and NUMBER.search(line):
        lines[index] = NUMBER.sub(lambda m: rng.choice(HOSTILE[:10]), line, count=1)
    elif kind == "key" and "=" in line and line.split("=", 1)[0]:
        key, value = line.split("=", 1)
        at = rng.randrange(len(key))
        key = key[:at] + key[at + 1:] if rng.random() < 0.5 else key[:at] + key[at] + key[at:]
        lines[index] = key + "=" + value
    elif kind == "delete":
        del lines[index]
    elif kind == "duplicate":
        lines.insert(index, line)
    elif kind == "swap":
        other = rng.randrange(len(lines))
        lines[index], lines[other] = lines[other], line
    elif kind == "insert":
        lines.insert(index, rng.choice(HOSTILE))
    elif kind == "truncate":
        cut = rng.randrange(len(text) + 1)
        return text[:cut], f"truncate at {cut}"
    elif kind == "bytes":
        at = rng.randrange(len(text) + 1)
        junk = "".join(chr(rng.randrange(1, 0x80)) for _ in range(rng.randrange(1, 8)))
        return text[:at] + junk + text[at:], f"insert {junk!r} at {at}"
    elif kind == "header" and line.startswith("["):
        lines[index] = "[" + rng.choice(["sp", "", "a@missing.tpl", line[1:-1] + "x",
                                         "x] y z", "conv1"]) + "]"
    else:
        lines.insert(index, rng.choice(HOSTILE))
        kind = "insert"
    return "\n".join(lines), f"{kind} at line {index + 1}"


def _alarm(signum, frame):
    raise Timeout()


def load_one(path: Path, max_elements: int) -> None:
    """Load and build the network of ``path`` (the unit under test)."""
    from n2prune import ini
    from n2prune.network.build import build_network
    environ = {"N2D2_MODELS": str(path.parent), "N2D2_DATA": str(path.parent)}
    build_network(ini.load(str(path), environ), max_elements=max_elements)


def check(path: Path, timeout: float, max_elements: int) -> Optional[str]:
    """None when loading ``path`` succeeded or raised a located ConfigError; else why not."""
    from n2prune.errors import ConfigError
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load_one(path, max_elements)
    except Timeout:
        return f"took more than {timeout} s"
    except ConfigError as error:
        if error.path is None or error.line is None:
            return f"unlocated ConfigError: {str(error)[:300]!r}"
    except BaseException as error:  # noqa: B902 - anything else is the finding
        return f"{type(error).__name__}: {str(error)[:300]!r}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return None


def run(count: int, seed: int, timeout: float, max_elements: int,
        shared: Optional[Path]) -> Tuple[List[Dict], int]:
    """Check ``count`` mutants spread over the corpus; (failures, mutants checked)."""
    cases = corpus(shared)
    rng = random.Random(seed)
    failures: List[Dict] = []
    with tempfile.TemporaryDirectory(prefix="fuzz_ini_") as work:
        def copy_of(path: Path) -> Path:  # each source folder copied once, templates included
            top = path.parent if path.suffix == ".ini" else path.parent.parent
            if path.suffix != ".ini" and not any(top.glob("*.ini")):
                top = path.parent
            return Path(work) / top.name / path.relative_to(top)
        for ini_path, _ in cases:
            target = Path(work) / ini_path.parent.name
            if not target.exists():
                shutil.copytree(ini_path.parent, target, ignore=shutil.ignore_patterns("*.gz"))
        for index in range(count):
            ini_path, source = cases[index % len(cases)]
            text = source.read_text(encoding="utf-8", errors="surrogateescape")
            mutant, what = text, []
            for _ in range(rng.choice([1, 1, 2, 3])):
                mutant, step = mutate(mutant, rng)
                what.append(step)
            if source == ini_path:
                path = copy_of(ini_path).with_name(f"mutant_{index}.ini")
                load = path
            else:
                path, load = copy_of(source), copy_of(ini_path)
            path.write_text(mutant, encoding="utf-8", errors="surrogateescape")
            reason = check(load, timeout, max_elements)
            if reason is not None:
                failures.append({"file": str(source.relative_to(source.parent.parent)),
                                 "index": index, "mutation": "; ".join(what),
                                 "reason": reason})
            if source == ini_path:
                path.unlink()
            else:
                path.write_text(text, encoding="utf-8", errors="surrogateescape")
    return failures, count


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="mutants to check")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds per mutant (wall clock)")
    parser.add_argument("--memory", type=int, default=4096,
                        help="address-space limit of the run, MiB")
    parser.add_argument("--max-elements", type=int, default=50_000_000,
                        help="build_network(max_elements=...) for each mutant")
    parser.add_argument("--shared", default=str(ROOT.parent / "shared" / "n2d2-models"))
    parser.add_argument("--json", action="store_true", help="print a JSON report")
    args = parser.parse_args(argv)
    limit = args.memory * 2 ** 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import torch  # after the limit, so that the limit covers it
    torch.set_num_threads(1)
    start = time.perf_counter()
    failures, checked = run(args.count, args.seed, args.timeout, args.max_elements,
                            Path(args.shared))
    elapsed = time.perf_counter() - start
    if args.json:
        print(json.dumps({"checked": checked, "failures": failures, "seconds": elapsed}))
    else:
        for failure in failures:
            print(f"{failure['file']} #{failure['index']} ({failure['mutation']}): "
                  f"{failure['reason']}")
        print(f"{checked} mutants, {len(failures)} failures, {elapsed:.1f} s "
              f"(seed {args.seed})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
