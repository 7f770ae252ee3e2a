"""``n2prune-compact NET.ini -w WEIGHTS --output DIR``: the pruned channels removed for real,
written back as INI, N2D2 weights and ONNX (``--sparse``: also the sparse model)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional

from n2prune.cli.common import Parser, add_partial_option, add_seed_option, resolved_seed, \
    run_guarded
from n2prune.plugins import add_import_option, load_plugins


COMPACT_EPILOG = """\
Writes DIR/NET.ini (NbOutputs and Mapping tables reduced, the rest as written), DIR/weights/
(N2D2 text files of the smaller network) and DIR/NET.onnx (with --masked-onnx also
DIR/NET.masked.onnx: the network as loaded, masks applied, not compacted), then reads them
back and compares them with the compacted network before reporting success. DIR/.compacted.json
lists the files written (--overwrite removes them); DIR/.lock is held while writing. A folder
holding a training run, or files n2prune-compact did not write, is refused.

Example: n2prune-compact networks/resnet-mini.ini -w runs/resnet-mini/weights --output small
"""


def compact_main(argv: Optional[List[str]] = None) -> int:
    """``n2prune-compact NET.ini -w WEIGHTS --output DIR``: remove pruned channels for real."""
    parser = Parser(prog="n2prune-compact", epilog=COMPACT_EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Remove the channels whose weights the masks prune entirely "
                     "(with the channels tied to them) and write the smaller network.")
    parser.add_argument("ini", metavar="NET.ini", help="N2D2 network file")
    parser.add_argument("-w", "--weights", metavar="WEIGHTS_DIR",
                        help="N2D2 weight files (and _masks.syntxt) to start from")
    add_partial_option(parser)
    parser.add_argument("--output", "-o", metavar="DIR", required=True,
                        help="folder for NET.ini, weights/ and NET.onnx")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the compacted network already in --output (its files "
                        "are removed); a folder holding other results is always refused")
    parser.add_argument("--no-onnx", action="store_true", help="do not write NET.onnx")
    parser.add_argument("--masked-onnx", action="store_true",
                        help="also write the uncompacted network, masks applied, as "
                        "NET.masked.onnx (same outputs, dense size)")
    add_seed_option(parser, "seed of the weight fillers when -w is not given")
    parser.add_argument("--sparse", action="store_true",
                        help="also write NET.sparse.pt (pruned layers in the CSR/BSR form "
                        "timed fastest, batch 1, or dense but stored packed) and "
                        "NET.sparse.json (its latency report)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    add_import_option(parser)
    args = parser.parse_args(argv)

    def action() -> int:
        from n2prune.compact.costs import cost_lines
        load_plugins(args.imports)
        from n2prune.compact.writeback import write_compacted
        from n2prune.n2d2io.read import read_weight_folder
        from n2prune.network.build import load_network
        from n2prune.outfolder import claim_compact_output, remove_stale
        net = load_network(args.ini, seed=resolved_seed(args.seed))
        if args.weights is not None:
            read_weight_folder(net, args.weights, args.allow_partial_weights)
        net.eval()
        lock, earlier = claim_compact_output(Path(args.output), args.overwrite)
        with lock:   # one process per folder, as n2prune-train
            written, small = write_compacted(net, args.ini, args.output,
                                             onnx=not args.no_onnx,
                                             masked_onnx=args.masked_onnx)
            remove_stale(Path(args.output), earlier, written)
        print("\n".join(cost_lines(net, small)))
        print(f"removed {small.compaction['removed_groups']} channel group(s); wrote "
              f"{len(written)} files in {args.output}")
        if args.sparse:
            from n2prune.sparse.ini import write_sparse
            files, _, lines = write_sparse(net, args.ini, args.output)
            print("\n".join(lines + [f"wrote {', '.join(f.name for f in files)}"]))
        return 0

    return run_guarded(action, args.debug)
