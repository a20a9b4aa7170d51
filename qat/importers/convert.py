"""One entry point for ``qrtl convert``: pick the importer by the model file's type.

* ``.onnx``: a QONNX graph (e.g. ``brevitas.export.export_qonnx``) -> qat.importers.from_qonnx
* ``file.py:NAME``: a Brevitas module object, or a function returning one (e.g. building the
  model and loading a state_dict), defined in a Python file -> qat.importers.from_brevitas (needs
  ``input_shape``).  Whole Brevitas modules cannot be pickled (``torch.save(model)`` fails on
  their quantizer injectors), so a file is the way to hand one to the command line.
* ``.h5`` / ``.json`` (+ weights): a QKeras/Keras model -> qat.importers.from_qkeras
"""
from __future__ import annotations

from pathlib import Path

from qat.ir.network import Network, NetworkError


def load_torch_module(spec: str):
    """A Brevitas ``nn.Module`` from ``file.py:NAME`` (a module, or a function returning one)."""
    import importlib.util

    import torch

    file, _, attr = spec.rpartition(":")
    if not Path(file).is_file():
        raise NetworkError(f"{file}: no such Python file")
    mod_spec = importlib.util.spec_from_file_location(Path(file).stem, file)
    module = importlib.util.module_from_spec(mod_spec)
    try:
        mod_spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - the user's file; one line
        raise NetworkError(f"{file}: running it failed: {type(exc).__name__}: {exc}") from None
    if not hasattr(module, attr):
        raise NetworkError(f"{file}: defines no '{attr}'")
    obj = getattr(module, attr)
    if callable(obj) and not isinstance(obj, torch.nn.Module):
        try:
            obj = obj()
        except Exception as exc:  # noqa: BLE001 - the user's function; one line
            raise NetworkError(f"{spec}: calling it failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(obj, torch.nn.Module):
        raise NetworkError(f"{spec}: is a {type(obj).__name__}, not a torch.nn.Module")
    return obj


def is_torch_spec(path: str | Path) -> bool:
    return ".py:" in str(path)


def convert_model(path: str | Path, weights: str | None = None, input_type: str | None = None,
                  default_type: str | None = None, output: str = "logits", mult_bits: int | None = None,
                  exact_scales: bool = False, input_shape: tuple[int, ...] | None = None) -> Network:
    """Import the model at ``path`` into a validated integer network."""
    p = Path(path)
    if is_torch_spec(path):
        from qat.importers.from_brevitas import import_brevitas
        from qat.importers.scales import DEFAULT_MULT_BITS

        if not input_shape:
            raise NetworkError(f"{path}: a PyTorch module needs --input-shape (one input without the batch "
                               f"axis, PyTorch layout, e.g. 1,8,8)")
        name = Path(str(path).rpartition(":")[0]).stem
        return import_brevitas(load_torch_module(str(path)), tuple(input_shape), name,
                               mult_bits or DEFAULT_MULT_BITS, exact_scales, output)
    if input_shape:
        raise NetworkError(f"{p}: --input-shape applies to PyTorch modules (file.py:NAME) only")
    if p.suffix.lower() == ".onnx":
        from qat.importers.from_qonnx import import_qonnx
        from qat.importers.scales import DEFAULT_MULT_BITS

        from qat.ir.types import parse_fixed

        for opt, val in (("--weights", weights), ("--default-type", default_type)):
            if val:
                raise NetworkError(f"{p}: {opt} applies to QKeras models only; a QONNX graph carries its "
                                   f"own quantizers")
        return import_qonnx(p, p.stem, mult_bits or DEFAULT_MULT_BITS, exact_scales, output,
                            parse_fixed(input_type) if input_type else None)
    if exact_scales:
        raise NetworkError(f"{p}: --exact-scales applies to QONNX and PyTorch models (QKeras: --mult-bits declares "
                           f"the dyadic multiplier width and refuses wider scales)")
    from qat.importers.from_qkeras import convert_file

    return convert_file(p, weights, input_type, default_type, output, mult_bits=mult_bits)
