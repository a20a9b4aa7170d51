"""What every ``qrtl`` command shares: one model loader and one reader of input vectors.

Every command that takes a model accepts the same inputs: an integer network directory
(or its ``network.json``), a QKeras model (``.h5``, or ``.json`` + ``--weights``), a QONNX
graph (``.onnx``) or a Brevitas module (``file.py:NAME`` + ``--input-shape``), converted on
the fly with the same options as ``qrtl convert``.  Input vectors (``.npy``, batch first)
are real values in the framework's layout (PyTorch networks: channels first), converted and
quantized exactly as the network's input conversion says, or raw integers with ``--raw-input``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

EPILOG_TYPES = ("Types: fixed<W,I> is a signed W-bit number with I integer bits including the sign "
                "(ap_fixed<W,I>, QKeras quantized_bits(W, I-1)); ufixed<W,I> is unsigned.")
MODEL_HELP = ("integer network directory, or a model converted first as by 'qrtl convert': QKeras .h5 "
              "(or .json + --weights), QONNX .onnx, or a Brevitas module file.py:NAME (+ --input-shape)")


def add_model_arguments(p: argparse.ArgumentParser, dest: str = "model", help: str = MODEL_HELP) -> None:
    """The model positional argument and the options that convert a model (as 'qrtl convert')."""
    p.add_argument(dest, help=help)
    g = p.add_argument_group("converting a model (ignored for an integer network directory)")
    g.add_argument("--weights", help="weights .h5 for a JSON architecture")
    g.add_argument("--input-type", metavar="T", help="input type fixed<W,I> or ufixed<W,I> (overrides the "
                                                       "model's first quantizer as the input format)")
    g.add_argument("--default-type", metavar="T", help="QKeras: type for kernels/biases that have no quantizer "
                                                         "(rounded; not bit-exact with the float model)")
    g.add_argument("--output", choices=("logits", "argmax"), default="logits",
                   help="network output: pre-softmax values (default) or the class index")
    g.add_argument("--mult-bits", type=int, metavar="W", help="width of dyadic requantization multipliers "
                   "b < 2^W. QONNX/PyTorch: float scales are rounded to such b/2^c (default 31, as HAWQ-V3); "
                   "QKeras: the declared width of dyadic (qat.recipes.qkeras_recipes) scales, wider ones are "
                   "refused")
    g.add_argument("--exact-scales", action="store_true", help="QONNX/PyTorch: refuse any rescale ratio that is "
                   "not exactly b/2^c with b < 2^W instead of rounding it")
    g.add_argument("--input-shape", metavar="C,H,W", help="PyTorch modules: one input's shape without the batch "
                                                           "axis, PyTorch layout (e.g. 64 or 1,8,8)")


def add_design_arguments(p: argparse.ArgumentParser) -> None:
    """How the RTL is built ('qrtl rtl', 'cosim', 'synth'): weight storage, pipelining, binary-layer order."""
    p.add_argument("--weight-storage", choices=("fixed", "registers", "tmr"), default="fixed",
                   help="weights: 'fixed' constants folded into shift-and-add logic (default), 'registers' "
                        "reloadable through the serial cfg port (cfg_en/cfg_sdi/cfg_commit), 'tmr' those registers "
                        "triplicated with majority voting")
    p.add_argument("--pipeline", default="layer", metavar="MODE",
                   help="register stages: 'layer' after every op (default), 'none' only at the output, "
                        "'depth:N' also inside ops after every N adder levels (shorter paths, more latency)")
    p.add_argument("--bnn-order", choices=("plain", "mst", "auto"), default="auto",
                   help="binary layers: plain XNOR-popcount, MST-reordered (channels from their spanning-tree "
                        "parent over the differing weights), or per layer whichever the cost model says is "
                        "smaller ('auto', default)")
    p.add_argument("--mst-depth", type=int, metavar="D", help="depth bound of the MST (levels below the root; "
                                                               "default unbounded)")
    p.add_argument("--adders", choices=("binary", "ternary"), default="binary",
                   help="adders of unrolled dense/conv layers: 'binary' portable Verilog (default), 'ternary' "
                        "AMD/Xilinx three-input adders (one LUT6_2 per bit on the CARRY4 chain; fewer LUTs, "
                        "7-series and later; simulation models of the primitives are written with the design)")
    p.add_argument("--fold", choices=("digits", "dsp"), default="digits",
                   help="how --reuse folds a layer: 'digits' keeps the weights constants of shift-and-add logic and "
                        "feeds the inputs in R digits (no multipliers; default), 'dsp' deals each output's terms "
                        "to R phases of multipliers with phase-selected weights, one DSP48 per multiplier (few "
                        "LUTs, many DSPs: hls4ml's reuse factor)")
    add_schedule_arguments(p)  # --reuse (hls.rtl.folded), --io (hls.rtl.stream)


def add_schedule_arguments(p: argparse.ArgumentParser) -> None:
    """``--reuse`` and ``--io``: how many clocks layers take and how data arrives (parsed by
    qat.ir.schedule.parse_reuse / check_io for every generator)."""
    p.add_argument("--reuse", metavar="R|LAYER=R,...", help="fold dense/conv layers: each layer's "
                   "multiplications time-multiplexed over R clocks (initiation interval R); 'R' for every layer, "
                   "'fc1=4,fc2=2' per layer, '2,fc1=4' a default with overrides (RTL: R at most the input's bits, "
                   "with --fold dsp the multiplications per output; HLS: R divides the multiplications per "
                   "output position)")
    p.add_argument("--io", choices=("parallel", "stream"), default="parallel",
                   help="'parallel': whole tensors at once (default); 'stream': one pixel (all its channels) per "
                        "read, line buffers for convolutions and pooling (needs spatial inputs)")


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    """``--input-shape`` as a tuple of positive integers."""
    if not text:
        return None
    try:
        dims = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--input-shape must be integers like 1,8,8, got {text!r}") from None
    if not dims or min(dims) < 1:
        raise ValueError(f"--input-shape must be positive integers like 1,8,8, got {text!r}")
    return dims


def is_network_dir(path: str | Path) -> bool:
    p = Path(path)
    return p.name == "network.json" or (p / "network.json").is_file()


def load_network(args: argparse.Namespace, dest: str = "model"):
    """The integer network named by ``args.<dest>``: loaded from its directory, or converted."""
    from qat.importers.convert import convert_model
    from qat.ir import netfile

    path = getattr(args, dest)
    p = Path(path)
    if is_network_dir(p) or p.is_dir() or not (p.suffix or ".py:" in str(path)):
        return netfile.load(p)  # a directory (or a missing one: the usual "no such network" error)
    return convert_model(path, args.weights, args.input_type, args.default_type, args.output, args.mult_bits,
                         args.exact_scales, parse_shape(args.input_shape))


def read_vectors(path: str | Path, net, raw: bool) -> np.ndarray:
    """Raw integer inputs of a single-input network from a .npy file of real values (framework
    layout, through the input conversion and quantizer) or of raw integers (``raw``)."""
    from qat.importers.input_quant import check_raw, framework_to_network_layout, quantize_real

    if len(net.inputs) != 1:
        raise ValueError(f"network '{net.name}' has {len(net.inputs)} inputs; vector files are for single-input "
                         f"networks")
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read a .npy array ({exc})") from None
    x = framework_to_network_layout(net, x, real=not raw)
    return check_raw(net.inputs[0], x) if raw else quantize_real(net.inputs[0], x)


def vectors_from_args(args: argparse.Namespace, net, default_n: int = 1000) -> np.ndarray:
    """``--vectors X.npy`` (with ``--raw-input``) or ``--random N`` edge + uniform vectors (seed ``--seed``)."""
    from rtl_sim.vectors import random_vectors

    if getattr(args, "vectors", None):
        return read_vectors(args.vectors, net, args.raw_input)
    n = default_n if getattr(args, "random", None) is None else args.random
    if n < 1:
        raise ValueError("--random must be at least 1")
    return random_vectors(net, n, args.seed)
