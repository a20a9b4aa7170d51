"""QKeras side of the search: which layers can be re-quantized, the model at given weight widths,
loss/metric, Hessian-vector products (Hutchinson), QAT fine-tuning and the integer network.

A searchable layer is one with a ``kernel_quantizer`` whose config has ``bits`` (QKeras
``quantized_bits`` and the recipes' ``dyadic_quantized_bits``); re-quantizing it to ``w`` bits
rewrites that one field in the model's config (integer bits, scales, activations unchanged), so
the float (latent) weights are kept and only the quantization grid changes.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from qat.search.errors import SearchError

FRAMEWORK = "qkeras"


def _tf():
    import tensorflow as tf

    return tf


def deterministic() -> None:
    """Same numbers in every process: TensorFlow op determinism and one thread per op."""
    tf = _tf()
    from tensorflow.python.framework import config as tf_config

    if not tf_config.is_op_determinism_enabled():
        tf_config.enable_op_determinism()
    for setter in (tf.config.threading.set_intra_op_parallelism_threads,
                   tf.config.threading.set_inter_op_parallelism_threads):
        try:
            setter(1)
        except RuntimeError:  # the runtime is already up in this process; op determinism still holds
            pass


def load(path: str):
    """A QKeras model from ``.h5`` through the importer's safe loader."""
    from qat.importers.from_qkeras import load_model

    return load_model(path)


def to_bytes(model) -> bytes:
    """The model as ``.h5`` file bytes (for Ray tasks and the cache)."""
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "m.h5")
        model.save(p, save_format="h5", include_optimizer=False)
        with open(p, "rb") as f:
            return f.read()


def from_bytes(data: bytes):
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "m.h5")
        with open(p, "wb") as f:
            f.write(data)
        return load(p)


def identity(model) -> list[Any]:
    """What the model's numbers depend on (config and weights), for content keys."""
    import json

    cfg = json.dumps(model.get_config(), sort_keys=True, default=str)
    return [cfg] + [np.ascontiguousarray(w).tobytes() for w in model.get_weights()]


def _kernel_cfg(layer_cfg: dict) -> dict | None:
    q = layer_cfg["config"].get("kernel_quantizer")
    if isinstance(q, dict) and isinstance(q.get("config"), dict) and "bits" in q["config"]:
        return q["config"]
    return None


def layers(model) -> list[str]:
    """Names of the layers whose weights the search re-quantizes, in model order.

    A layer with a kernel but no ``bits`` kernel quantizer stops the search (one line naming it)."""
    names = []
    present = {lyr.name for lyr in model.layers}
    for cfg in model.get_config()["layers"]:
        if cfg["config"].get("name") not in present:  # a Sequential model's InputLayer entry
            continue
        layer = model.get_layer(cfg["config"]["name"])
        if not hasattr(layer, "kernel"):
            continue
        if _kernel_cfg(cfg) is None:
            q = cfg["config"].get("kernel_quantizer")
            raise SearchError(f"layer '{layer.name}' ({cfg['class_name']}): its kernel quantizer "
                              f"{q if isinstance(q, str) else (q or {}).get('class_name')!r} has no bit width the "
                              f"recipes can change (needs quantized_bits or dyadic_quantized_bits)")
        names.append(layer.name)
    if not names:
        raise SearchError(f"model '{model.name}' has no quantized dense/conv layer to search")
    return names


def widths_of(model) -> dict[str, int]:
    """Each searchable layer's current kernel width (bits)."""
    by_name = {c["config"]["name"]: c for c in model.get_config()["layers"]}
    return {n: int(_kernel_cfg(by_name[n])["bits"]) for n in layers(model)}


def with_widths(model, widths: dict[str, int]):
    """A copy of ``model`` whose layers ``widths`` have kernels of that many bits (same float weights)."""
    tf = _tf()
    from qat.importers.from_qkeras import _custom_objects

    cfg = model.get_config()
    for lc in cfg["layers"]:
        name = lc["config"]["name"]
        if name in widths:
            kc = _kernel_cfg(lc)
            if kc is None:
                raise SearchError(f"layer '{name}': cannot be re-quantized (no kernel quantizer bits)")
            kc["bits"] = int(widths[name])
    cls = tf.keras.Sequential if isinstance(model, tf.keras.Sequential) else tf.keras.Model
    new = cls.from_config(cfg, custom_objects=_custom_objects())
    new.set_weights(model.get_weights())
    return new


def logits_model(model):
    """The model without a final softmax (the integer network and the hardware output logits); the
    same layers and weights, so training it trains ``model``."""
    tf = _tf()
    last = model.layers[-1]
    act = getattr(last, "activation", None)
    if type(last).__name__ == "Activation" and getattr(act, "__name__", "") == "softmax":
        return tf.keras.Model(model.inputs, model.layers[-2].output)
    return model


def task_of(y: np.ndarray) -> str:
    """'classification' for integer class labels (metric: accuracy), else 'regression' (metric: -MSE)."""
    y = np.asarray(y)
    return "classification" if y.ndim == 1 and np.issubdtype(y.dtype, np.integer) else "regression"


def _loss_obj(task: str):
    tf = _tf()
    if task == "classification":
        return tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return tf.keras.losses.MeanSquaredError()


def evaluate(model, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Mean loss (cross-entropy on logits, or MSE) and metric (accuracy, or -MSE) on (x, y)."""
    task = task_of(y)
    pred = outputs(model, x)
    loss = float(_loss_obj(task)(y, pred).numpy())
    metric = float(np.mean(np.argmax(pred, axis=-1) == y)) if task == "classification" else -loss
    return {"loss": loss, "metric": metric}


def hutchinson_trace(model, layer: str, x: np.ndarray, y: np.ndarray, samples: int, seed: int) -> float:
    """Hutchinson estimate of Tr(H) of the loss w.r.t. ``layer``'s kernel (Rademacher probes z:
    Tr(H) ~ mean z^T H z), through the quantizers' straight-through gradients (HAWQ-V2/V3)."""
    tf = _tf()
    var = model.get_layer(layer).kernel
    model = logits_model(model)
    loss_fn = _loss_obj(task_of(y))
    rng = np.random.default_rng(seed)
    xt, yt = tf.constant(x), tf.constant(y)
    est = []
    for _ in range(samples):
        z = tf.constant(rng.choice([-1.0, 1.0], size=var.shape).astype(np.float32))
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                loss = loss_fn(yt, model(xt, training=False))
            g = inner.gradient(loss, var)
            gz = tf.reduce_sum(g * z)
        hz = outer.gradient(gz, var)
        est.append(0.0 if hz is None else float(tf.reduce_sum(hz * z).numpy()))
    return float(np.mean(est))


def weight_error(model, layer: str, width: int) -> tuple[float, int]:
    """(||Q_w(W) - W||^2, number of weights) of ``layer``'s kernel at ``width`` bits."""
    m = with_widths(model, {layer: width})
    lyr = m.get_layer(layer)
    w = lyr.kernel.numpy()
    q = np.asarray(lyr.kernel_quantizer_internal(lyr.kernel).numpy()) if hasattr(lyr, "kernel_quantizer_internal") \
        else w
    return float(np.sum((q.astype(np.float64) - w) ** 2)), int(w.size)


def finetune(model, x: np.ndarray, y: np.ndarray, epochs: int, lr: float, seed: int, batch_size: int = 64):
    """QAT fine-tuning with the recipes' loop (qat.recipes.qkeras_recipes: Adam, shuffled batches)."""
    tf = _tf()
    from qat.recipes.qkeras_recipes import _fit

    tf.keras.utils.set_random_seed(seed)
    lm = logits_model(model)
    if task_of(y) == "classification":
        _fit(lm, x, y, epochs, lr, batch_size, seed)
    elif epochs > 0:
        lm.compile(optimizer=tf.keras.optimizers.Adam(lr), loss=_loss_obj("regression"))
        lm.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0)
    return model


def to_network(model):
    """The model's integer network (qat.importers.from_qkeras)."""
    from qat.importers.from_qkeras import import_qkeras

    return import_qkeras(model)


def outputs(model, x: np.ndarray) -> np.ndarray:
    """The framework's outputs the integer network reproduces (before a final softmax)."""
    return np.asarray(logits_model(model).predict(x, batch_size=1024, verbose=0))


def from_ref(ref) -> object:
    return from_bytes(ref.payload)


def copy(model):
    """An independent copy (same config and weights)."""
    return with_widths(model, {})


def save(model, path: str) -> list[str]:
    """Write the model as ``path`` (.h5); returns the files written."""
    model.save(path, save_format="h5", include_optimizer=False)
    return [path]


def to_ref_payload(model) -> bytes:
    """What a ModelRef of this model carries (the .h5 bytes)."""
    return to_bytes(model)


def write_best(ref, out_dir) -> list[str]:
    """The fine-tuned model as OUT/best.h5."""
    from pathlib import Path

    p = Path(out_dir) / "best.h5"
    p.write_bytes(ref.payload)
    return [p.name]
