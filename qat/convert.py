"""One entry point for ``qrtl convert``: pick the importer by the model file's type.

* ``.onnx``: a QONNX graph (e.g. ``brevitas.export.export_qonnx``) -> qat.qonnx_import
* ``.h5`` / ``.json`` (+ weights): a QKeras/Keras model -> qat.qkeras_import
"""
from __future__ import annotations

from pathlib import Path

from .network import Network, NetworkError


def convert_model(path: str | Path, weights: str | None = None, input_type: str | None = None,
                  default_type: str | None = None, output: str = "logits", mult_bits: int | None = None,
                  exact_scales: bool = False) -> Network:
    """Import the model at ``path`` into a validated integer network."""
    p = Path(path)
    if p.suffix.lower() == ".onnx":
        from .qonnx_import import DEFAULT_MULT_BITS, import_qonnx

        for opt, val in (("--weights", weights), ("--input-type", input_type), ("--default-type", default_type)):
            if val:
                raise NetworkError(f"{p}: {opt} applies to QKeras models only; a QONNX graph carries its "
                                   f"own quantizers")
        return import_qonnx(p, p.stem, mult_bits or DEFAULT_MULT_BITS, exact_scales, output)
    if mult_bits is not None or exact_scales:
        raise NetworkError(f"{p}: --mult-bits/--exact-scales apply to QONNX (.onnx) models only")
    from .qkeras_import import convert_file

    return convert_file(p, weights, input_type, default_type, output)
