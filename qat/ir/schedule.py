"""Schedule options shared by the generators: ``--reuse`` (folding) and ``--io`` (parallel or stream).

The arithmetic of a network never depends on these; they only choose how many clocks a layer takes
and how its data arrives.  Parsing lives here (not in a generator or the command line) so that the
HLS C++ and the Verilog generators read the same option text the same way.
"""
from __future__ import annotations

from .network import Network, NetworkError

MAC_KINDS = ("dense", "conv1d", "conv2d")  # layers whose multiplications a reuse factor folds
IO_MODES = ("parallel", "stream")


def parse_reuse(text: str | None, net: Network, kinds: tuple[str, ...] = MAC_KINDS) -> dict[str, int]:
    """``--reuse`` text -> {layer name: reuse factor R >= 1}.

    ``"4"`` sets R for every layer of ``kinds``; ``"fc1=4,fc2=2"`` names layers; ``"2,fc1=4"`` is a
    default with overrides.  Layers not covered are absent (R = 1).  Raises NetworkError (one line,
    naming the layer and the option) for unknown layers, layers of another kind, or R < 1.
    Whether R suits a layer (divides its multiplications, ...) is the generator's check."""
    if text is None or str(text).strip() == "":
        return {}
    ops = {op.name: op for op in net.ops}
    default: int | None = None
    named: dict[str, int] = {}
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        name, eq, val = part.rpartition("=")
        name = name.strip()
        try:
            r = int(val)
        except ValueError:
            raise NetworkError(f"--reuse {part!r}: the reuse factor must be an integer (e.g. --reuse 4 or "
                               f"--reuse fc1=4,fc2=2)") from None
        if r < 1:
            raise NetworkError(f"--reuse {part!r}: the reuse factor must be at least 1")
        if not eq:
            if default is not None:
                raise NetworkError(f"--reuse {text!r}: more than one global reuse factor")
            default = r
            continue
        op = ops.get(name)
        if op is None:
            raise NetworkError(f"--reuse {part!r}: network '{net.name}' has no layer '{name}' "
                               f"(layers with multiplications: "
                               f"{', '.join(o.name for o in net.ops if o.kind in kinds) or 'none'})")
        if op.kind not in kinds:
            raise NetworkError(f"--reuse {part!r}: {op.where()} has no multiplications to fold (reuse applies "
                               f"to {', '.join(kinds)} layers)")
        if name in named:
            raise NetworkError(f"--reuse {text!r}: layer '{name}' given twice")
        named[name] = r
    out = {op.name: default for op in net.ops if default is not None and op.kind in kinds}
    out.update(named)
    return out


def check_io(mode: str | None) -> str:
    """``--io`` text -> 'parallel' (default) or 'stream'."""
    mode = mode or "parallel"
    if mode not in IO_MODES:
        raise NetworkError(f"--io {mode!r}: choose one of {', '.join(IO_MODES)}")
    return mode
