"""``qrtl search``: mixed-precision search priced in synthesized hardware, its jobs on Ray.
Registered by qrtl.cli (``add_parser`` / ``COMMANDS``); errors are ValueErrors (one line, exit 1)."""
from __future__ import annotations

import argparse
from pathlib import Path

from .common import parse_shape


def parse_widths(text: str) -> list[int]:
    """``2..8`` (a range, both ends included) or ``2,4,6``."""
    try:
        if ".." in text:
            lo, hi = (int(v) for v in text.split("..", 1))
            ws = list(range(lo, hi + 1))
        else:
            ws = [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"--widths must look like 2..8 or 2,4,6, got {text!r}") from None
    if not ws or min(ws) < 2 or max(ws) > 16:
        raise ValueError(f"--widths must be bit widths in 2..16, got {text!r}")
    return sorted(set(ws))


def add_parser(sub) -> None:
    s = sub.add_parser(
        "search", help="choose per-layer weight widths under a LUT or loss budget, priced by synthesizing each layer",
        description="Mixed-precision search. For every searched layer (dense/conv with a quantized_bits or dyadic "
                    "kernel quantizer; Brevitas QuantLinear/QuantConv) and candidate weight width: the sensitivity "
                    "(the loss increase measured when only that layer is re-quantized, and the Hessian-trace "
                    "estimate Tr(H)/n*||Q(W)-W||^2 by Hutchinson probes, HAWQ-V2/V3) and the price (LUTs of the "
                    "layer's integer sub-network, generated as by 'qrtl rtl' and synthesized with Yosys, or the "
                    "fast price: the adder-graph cost model for constant-matrix modules, Yosys for the rest). "
                    "An integer linear program (HiGHS) picks one width per layer: least "
                    "summed sensitivity under --budget-luts, or fewest LUTs under --max-loss. The choice is "
                    "fine-tuned (QAT, the recipes' loop) and verified: golden == framework, RTL co-simulation, "
                    "Yosys of the whole network against the predicted LUTs. Every job runs as a Ray task (a "
                    "local Ray instance, or --ray-address) and is cached on disk by content: an interrupted "
                    "search resumes where it stopped. Writes DIR/search.json, DIR/best.h5 (QKeras) or "
                    "DIR/best_state_dict.pt (Brevitas), DIR/pareto.md and DIR/pareto.png.")
    s.add_argument("model", help="QKeras model .h5, or Brevitas module file.py:NAME (with --input-shape)")
    s.add_argument("--data", required=True, metavar="DATA.npz",
                   help="x_train, y_train, x_test, y_test; integer labels: classification (accuracy), "
                        "other targets: regression (MSE)")
    b = s.add_mutually_exclusive_group(required=True)
    b.add_argument("--budget-luts", type=float, metavar="N", help="LUT budget of the whole network")
    b.add_argument("--max-loss", type=float, metavar="X",
                   help="budget on the summed sensitivity (with --objective measured: the predicted increase of "
                        "the training loss)")
    s.add_argument("--widths", default="2..8", metavar="W", help="candidate weight widths: 2..8 (default) or 2,4,6")
    s.add_argument("--objective", choices=("measured", "hessian"), default="measured",
                   help="sensitivity the ILP uses: measured loss increase (default) or Hessian-weighted perturbation")
    s.add_argument("--price", choices=("yosys", "fast"), default="yosys",
                   help="layer price: Yosys synth_xilinx LUTs (default) or fast (the adder-graph cost model for "
                        "constant-matrix modules, Yosys for the small other modules)")
    s.add_argument("--board", default="pynq-z2", help="board whose FPGA family Yosys maps to (default pynq-z2)")
    s.add_argument("--ray-address", metavar="ADDR", help="Ray cluster (HOST:PORT of 'ray start --head'); "
                                                         "default: a local Ray instance")
    s.add_argument("--workers", type=int, metavar="N", help="local Ray instance: worker processes (default: CPUs)")
    s.add_argument("--epochs", type=int, default=2, help="QAT fine-tuning epochs of the chosen widths (default 2)")
    s.add_argument("--lr", type=float, default=3e-3, help="fine-tuning learning rate (default 3e-3)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--sens-samples", type=int, default=1024, metavar="N",
                   help="training samples for the sensitivities (default 1024)")
    s.add_argument("--hessian-probes", type=int, default=8, metavar="N", help="Hutchinson probes per layer (default 8)")
    s.add_argument("--pareto-points", type=int, default=6, metavar="N", help="LUT budgets swept for the Pareto table")
    s.add_argument("--random", type=int, default=200, metavar="N",
                   help="random + edge vectors co-simulated besides x_test (default 200)")
    s.add_argument("--no-verify", action="store_true", help="skip verification of the chosen model")
    s.add_argument("--no-synth-check", action="store_true", help="verify without synthesizing the whole network")
    s.add_argument("--metric", metavar="FILE.py:NAME",
                   help="the model's own metric, higher is better: NAME(predict, data) -> float, predict(x) the "
                        "model's outputs, data every array of DATA.npz (e.g. fit an autoencoder's decoder on "
                        "x_train, score the EMD on x_test); default: accuracy or -MSE")
    s.add_argument("--cache", metavar="DIR", help="job cache (default DIR/cache); share it between searches")
    s.add_argument("--input-shape", metavar="C,H,W", help="Brevitas modules: one input's shape without the batch axis")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("-o", "--out", required=True, metavar="DIR", help="output directory")


def cmd_search(args: argparse.Namespace) -> int:
    from qat.search.run import SearchOptions, search
    from qat.search.summary import print_summary

    if args.workers is not None and args.workers < 1:
        raise ValueError("--workers must be at least 1")
    if args.workers is not None and args.ray_address:
        raise ValueError("--workers sets the size of a local Ray instance; a cluster (--ray-address) has its own")
    opts = SearchOptions(widths=parse_widths(args.widths), budget_luts=args.budget_luts, max_loss=args.max_loss,
                         objective=args.objective, board=args.board, price=args.price,
                         sens_samples=args.sens_samples, hessian_probes=args.hessian_probes, epochs=args.epochs,
                         lr=args.lr, seed=args.seed, pareto_points=args.pareto_points, verify=not args.no_verify,
                         verify_synth=not args.no_synth_check, random_vectors=args.random, workers=args.workers,
                         ray_address=args.ray_address, cache=args.cache, metric=args.metric, progress=not args.quiet)
    rep = search(args.model, args.data, args.out, opts, parse_shape(args.input_shape))
    print_summary(rep)
    print(f"wrote {Path(args.out) / 'search.json'}, pareto.md, pareto.png, {', '.join(rep['chosen']['files'])}")
    v = rep.get("verification")
    return 0 if v is None or v["ok"] else 1


COMMANDS = {"search": cmd_search}
