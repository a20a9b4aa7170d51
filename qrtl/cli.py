"""The ``qrtl`` command line.

Errors are one line on stderr (``qrtl: error: ...``) and exit status 1;
usage errors exit with status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

EPILOG_TYPES = ("Types: fixed<W,I> is a signed W-bit number with I integer bits including the sign "
                "(ap_fixed<W,I>, QKeras quantized_bits(W, I-1)); ufixed<W,I> is unsigned.")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qrtl",
        description="qrtl: quantized networks -> exact integer networks -> hardware. "
                    "Every stage is checked against the golden integer model.",
        epilog="Run 'qrtl COMMAND --help' for each command's options.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    c = sub.add_parser(
        "convert", help="turn a trained QKeras model into an integer network",
        description="Convert a QKeras model (.h5, or JSON architecture + --weights .h5) into an integer "
                    "network directory whose golden model reproduces QKeras's pre-softmax outputs bit for "
                    "bit. The input type comes from the model's first quantizer or from --input-type; with "
                    "neither, conversion stops. A final softmax is dropped (outputs are logits) unless "
                    "--output argmax is given.",
        epilog=EPILOG_TYPES)
    c.add_argument("model", help="QKeras model: .h5 file, or .json architecture (needs --weights)")
    c.add_argument("--weights", help="weights .h5 for a JSON architecture")
    c.add_argument("--input-type", metavar="T", help="input type fixed<W,I> or ufixed<W,I> (overrides the "
                                                       "model's first quantizer as the input format)")
    c.add_argument("--default-type", metavar="T", help="type for kernels/biases that have no quantizer "
                                                         "(rounded; not bit-exact with the float model)")
    c.add_argument("--output", choices=("logits", "argmax"), default="logits",
                   help="network output: pre-softmax values (default) or the class index")
    c.add_argument("-o", "--out", required=True, metavar="NET", help="output network directory")
    c.add_argument("--json", metavar="FILE", help="also write the per-layer report as JSON")

    pr = sub.add_parser(
        "predict", help="run the golden integer model",
        description="Run the golden integer model on inputs from a .npy file (batch first). Real inputs are "
                    "quantized exactly as the framework's first quantizer does; without one they must be "
                    "exactly representable in the input type. Writes float64 real values, or raw integers "
                    "with --integers.")
    pr.add_argument("net", help="integer network directory")
    pr.add_argument("--input", required=True, metavar="X.npy", help="inputs, shape (N, *input_shape)")
    pr.add_argument("-o", "--out", required=True, metavar="Y.npy", help="where to write the outputs")
    pr.add_argument("--integers", action="store_true", help="write raw integers (int64) instead of reals")
    pr.add_argument("--raw-input", action="store_true", help="X.npy holds raw integers of the input type")

    i = sub.add_parser(
        "info", help="per-layer table: shapes, types, accumulator widths, parameters, bit operations",
        description="Print a per-op table of an integer network: output shape and type, the accumulator "
                    "width proven by interval analysis, parameters and bit operations (BOPs = MACs x input "
                    "bits x weight bits). 'f32' flags accumulators that float32 frameworks compute exactly.")
    i.add_argument("net", help="integer network directory")
    i.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def _fail(msg: str) -> int:
    print(f"qrtl: error: {msg}", file=sys.stderr)
    return 1


def cmd_convert(args) -> int:
    from rich.console import Console

    from qat import netfile
    from qat.qkeras_import import convert_file
    from qat.report import summary

    console = Console(stderr=True)
    with console.status(f"converting {args.model}"):
        net = convert_file(args.model, args.weights, args.input_type, args.default_type, args.output)
        netfile.save(net, args.out)
    rep = summary(net)
    if args.json:
        Path(args.json).write_text(json.dumps(rep, indent=1, sort_keys=True) + "\n")
    _print_table(rep)
    for note in net.notes:
        print(f"note: {note}" if not note.startswith("note:") else note)
    print(f"wrote {args.out} ({len(net.ops)} ops)")
    return 0


def cmd_predict(args) -> int:
    from qat import golden, netfile
    from qat.input_quant import check_raw, quantize_real

    net = netfile.load(args.net)
    if len(net.inputs) != 1:
        return _fail(f"{args.net}: predict supports single-input networks")
    try:
        x = np.load(args.input, allow_pickle=False)
    except (OSError, ValueError) as exc:
        return _fail(f"{args.input}: cannot read a .npy array ({exc})")
    inp = net.inputs[0]
    raw = check_raw(inp, x) if args.raw_input else quantize_real(inp, x)
    out = golden.run(net, raw)[net.outputs[0]]
    if not args.integers:
        out = golden.dequantize(net.tensor_types()[net.outputs[0]], out)
    else:
        out = np.asarray(out).astype(np.int64) if np.asarray(out).dtype != object else out
    np.save(args.out, out, allow_pickle=False)
    print(f"wrote {args.out}: shape {tuple(out.shape)}, {'raw integers' if args.integers else 'float64 reals'}")
    return 0


def cmd_info(args) -> int:
    from qat import netfile
    from qat.report import summary

    rep = summary(netfile.load(args.net))
    if args.json:
        print(json.dumps(rep, indent=1, sort_keys=True))
    else:
        _print_table(rep)
        for note in rep["notes"]:
            print(f"note: {note}" if not note.startswith("note:") else note)
    return 0


def _print_table(rep: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{rep['network']}: {len(rep['ops'])} tensors, {rep['total_params']} parameters, "
                    f"{rep['total_bops']} BOPs")
    for col in ("op", "kind", "shape", "type", "acc bits", "range", "params", "BOPs", "f32", "from"):
        t.add_column(col, justify="right" if col in ("acc bits", "params", "BOPs") else "left")
    for r in rep["ops"]:
        f32 = {True: "exact", False: "RISK"}.get(r.get("float32_exact"), "")
        rng = "" if "range" not in r else f"[{r['range'][0]}, {r['range'][1]}]"
        t.add_row(r["name"], r["kind"], "x".join(map(str, r["shape"])), r["type"], str(r.get("proven_bits", "")),
                  rng, str(r["params"]), str(r["bops"]), f32, r["source"])
    Console(width=160).print(t)


COMMANDS = {"convert": cmd_convert, "predict": cmd_predict, "info": cmd_info}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from qat.netfile import NetFileError
    from qat.network import NetworkError

    errors: tuple[type[BaseException], ...] = (NetFileError, NetworkError, ValueError, OSError)
    try:
        return COMMANDS[args.command](args)
    except errors as exc:
        return _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


if __name__ == "__main__":
    sys.exit(main())
