"""Brevitas side of the search (same functions as qat.search.qkeras_model).

The model comes as ``file.py:NAME`` (a module, or a function returning one, as for ``qrtl
convert``); a searchable layer is a QuantLinear/QuantConv whose weight quantizer has a
``bit_width`` (re-quantized with ``quant_injector.let(bit_width=w)``: the float weights are kept,
the scale is recomputed from them).  A reference carries the file's text, NAME, the input shape
and ``{"state_dict", "widths"}``, so any Ray worker rebuilds exactly the same module.
"""
from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from qat.search.errors import SearchError

FRAMEWORK = "brevitas"


def deterministic() -> None:
    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)


def _build(source: str, name: str):
    from qat.importers.convert import load_torch_module

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "search_model.py"
        p.write_text(source)
        return load_torch_module(f"{p}:{name}")


def _payload(state: dict, widths: dict[str, int]) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save({"state_dict": state, "widths": dict(widths)}, buf)
    return buf.getvalue()


def ref_of(path: str, input_shape: tuple[int, ...] | None):
    from qat.importers.convert import load_torch_module
    from qat.search.model_ref import ModelRef

    if not input_shape:
        raise SearchError(f"{path}: a Brevitas module needs --input-shape (one input without the batch axis)")
    file, _, name = path.rpartition(":")
    m = load_torch_module(path)
    return ModelRef("brevitas", _payload(m.state_dict(), widths_of(m)), Path(file).read_text(), name,
                    tuple(input_shape))


def from_ref(ref):
    import torch

    m = _build(ref.source, ref.name)
    m._qrtl_ref = (ref.source, ref.name, tuple(ref.input_shape))
    blob = torch.load(io.BytesIO(ref.payload), weights_only=True)
    _set_widths(m, blob["widths"])
    _load_state(m, blob["state_dict"])
    return m


def _load_state(m, state: dict) -> None:
    """Load ``state``; Brevitas leaves statistics-initialized scales (not yet collected) out of a
    state_dict, so keys missing on both sides are fine, unexpected ones are not."""
    res = m.load_state_dict(state, strict=False)
    if res.unexpected_keys:
        raise SearchError(f"state_dict does not fit the module: unexpected {res.unexpected_keys[0]!r}")


def _quant_layers(model) -> dict[str, Any]:
    return {n: mod for n, mod in model.named_modules()
            if hasattr(mod, "weight_quant") and hasattr(getattr(mod, "weight_quant"), "quant_injector")}


def layers(model) -> list[str]:
    names = []
    for n, mod in _quant_layers(model).items():
        try:
            mod.weight_quant.quant_injector.bit_width
        except Exception:  # noqa: BLE001 - injector attributes raise their own types
            raise SearchError(f"layer '{n}' ({type(mod).__name__}): its weight quantizer has no bit width the "
                              f"recipes can change") from None
        names.append(n)
    if not names:
        raise SearchError(f"model {type(model).__name__} has no QuantLinear/QuantConv layer to search")
    return names


def widths_of(model) -> dict[str, int]:
    return {n: int(mod.quant_weight().bit_width) for n, mod in _quant_layers(model).items()}


def _set_widths(model, widths: dict[str, int]) -> None:
    mods = _quant_layers(model)
    for n, w in widths.items():
        if n not in mods:
            raise SearchError(f"layer '{n}': not a quantized layer of the model")
        if int(mods[n].quant_weight().bit_width) == int(w):
            continue
        wq = mods[n].weight_quant
        wq.quant_injector = wq.quant_injector.let(bit_width=int(w))
        wq.init_tensor_quant()


def with_widths(model, widths: dict[str, int]):
    """A fresh module (rebuilt from its file) with ``model``'s weights and widths, then ``widths``."""
    src, name, shape = model._qrtl_ref
    m = _build(src, name)
    m._qrtl_ref = model._qrtl_ref
    _set_widths(m, {**widths_of(model), **widths})
    _load_state(m, model.state_dict())
    return m


def copy(model):
    return with_widths(model, {})


def task_of(y: np.ndarray) -> str:
    y = np.asarray(y)
    return "classification" if y.ndim == 1 and np.issubdtype(y.dtype, np.integer) else "regression"


def _forward(model, x):
    from qat.recipes.brevitas_recipes import _logits

    return _logits(model(x))


def _loss(task: str, out, y):
    import torch.nn.functional as F

    return F.cross_entropy(out, y) if task == "classification" else F.mse_loss(out, y)


def _tensors(x, y):
    import torch

    return (torch.as_tensor(np.asarray(x, dtype=np.float32)),
            torch.as_tensor(np.asarray(y)).long() if task_of(y) == "classification"
            else torch.as_tensor(np.asarray(y, dtype=np.float32)))


def evaluate(model, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    import torch

    task = task_of(y)
    xt, yt = _tensors(x, y)
    model.eval()
    with torch.no_grad():
        out = _forward(model, xt)
        loss = float(_loss(task, out, yt))
    metric = float((out.argmax(1) == yt).float().mean()) if task == "classification" else -loss
    return {"loss": loss, "metric": metric}


def hutchinson_trace(model, layer: str, x: np.ndarray, y: np.ndarray, samples: int, seed: int) -> float:
    """Hutchinson estimate of Tr(H) of the loss w.r.t. ``layer``'s weight (Rademacher probes)."""
    import torch

    w = dict(model.named_modules())[layer].weight
    xt, yt = _tensors(x, y)
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    est = []
    for _ in range(samples):
        z = (torch.randint(0, 2, w.shape, generator=gen) * 2 - 1).to(w.dtype)
        loss = _loss(task_of(y), _forward(model, xt), yt)
        (g,) = torch.autograd.grad(loss, w, create_graph=True)
        (hz,) = torch.autograd.grad((g * z).sum(), w, allow_unused=True)
        est.append(0.0 if hz is None else float((hz * z).sum()))
    return float(np.mean(est))


def weight_error(model, layer: str, width: int) -> tuple[float, int]:
    import torch

    m = with_widths(model, {layer: width})
    mod = dict(m.named_modules())[layer]
    with torch.no_grad():
        q = mod.quant_weight().value.double()
        w = mod.weight.double()
    return float(((q - w) ** 2).sum()), int(w.numel())


def finetune(model, x: np.ndarray, y: np.ndarray, epochs: int, lr: float, seed: int, batch_size: int = 64):
    """QAT fine-tuning with the recipes' loop (qat.recipes.brevitas_recipes.train)."""
    from qat.recipes.brevitas_recipes import train

    if task_of(y) != "classification":
        raise SearchError("Brevitas models: fine-tuning is for classification (integer labels) only")
    if epochs > 0:
        train(model, x, y, epochs=epochs, lr=lr, seed=seed, batch_size=batch_size)
    return model


def to_network(model):
    from qat.importers.from_brevitas import import_brevitas
    from qat.importers.scales import DEFAULT_MULT_BITS

    return import_brevitas(model, tuple(model._qrtl_ref[2]), "search_model", DEFAULT_MULT_BITS, False, "logits")


def outputs(model, x: np.ndarray) -> np.ndarray:
    from qat.importers.from_brevitas import brevitas_outputs

    return np.asarray(brevitas_outputs(model, np.asarray(x, dtype=np.float32)))


def golden_agreement(model, net, x: np.ndarray) -> dict[str, Any]:
    """Golden model vs Brevitas (qat.importers.from_brevitas.agreement: outputs in output steps)."""
    from qat.importers.from_brevitas import agreement

    a = agreement(model, net, np.asarray(x, dtype=np.float32))
    bad = a["first_mismatch_input"]
    n = int(a["vectors"])
    return {"vectors": n, "exact_vectors": n - len(a["mismatch_inputs"]) if bad is not None else n,
            "ok": a["equal"] == a["outputs"], "first_mismatch": bad}


def to_ref_payload(model) -> bytes:
    return _payload(model.state_dict(), widths_of(model))


def write_best(ref, out_dir) -> list[str]:
    """OUT/best_state_dict.pt ({'state_dict', 'widths'}), OUT/best_model.py (the original file) and
    OUT/best.py whose ``best`` rebuilds the fine-tuned module: ``qrtl convert OUT/best.py:best``."""
    out = Path(out_dir)
    (out / "best_state_dict.pt").write_bytes(ref.payload)
    (out / "best_model.py").write_text(ref.source)
    (out / "best.py").write_text(
        '"""The fine-tuned module chosen by qrtl search: best_model.py:' + ref.name + ' at the searched widths."""\n'
        "from pathlib import Path\n\n\ndef best():\n"
        "    from qat.search.brevitas_model import from_ref\n"
        "    from qat.search.model_ref import ModelRef\n\n"
        "    here = Path(__file__).resolve().parent\n"
        f"    return from_ref(ModelRef('brevitas', (here / 'best_state_dict.pt').read_bytes(),\n"
        f"                             (here / 'best_model.py').read_text(), {ref.name!r}, {tuple(ref.input_shape)!r}))\n")
    (out / "best_widths.json").write_text(json.dumps(dict(sorted(_widths_from(ref).items())), indent=1) + "\n")
    return ["best.py:best", "best_state_dict.pt", "best_model.py", "best_widths.json"]


def _widths_from(ref) -> dict[str, int]:
    import torch

    return torch.load(io.BytesIO(ref.payload), weights_only=True)["widths"]
