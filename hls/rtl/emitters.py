"""The Verilog backend's emitter registry (one emitter per op kind, plus hardware variants such as
the MST-reordered binary layers) and its error type.  A leaf module: the generator
(hls.rtl.verilog) and every module that registers an emitter variant import it."""
from __future__ import annotations

from qat.ir.network import NetworkError
from qat.ir.spec import EmitterRegistry

EMITTERS = EmitterRegistry("Verilog")  # op kind -> OpModule method building its elements


class RTLError(NetworkError):
    """The network uses something the RTL generator cannot build exactly."""
