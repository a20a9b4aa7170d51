"""Safe loading: no model file can make ``qrtl convert`` run code or read outside its folder.

A Keras Lambda layer stores Python bytecode in the model file; Keras 2's ``load_model`` runs it
while rebuilding the graph (``safe_mode=True`` does not stop it for ``.h5``: checked below).  qrtl
reads the configuration as plain data first and refuses such files with one line; the tests
prove the Lambda's code never ran (its sentinel file does not exist)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qrtl.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "jet_tagger"


def qrtl_cmd() -> list[str]:
    script = Path(sys.executable).parent / "qrtl"
    return [str(script)] if script.exists() else [sys.executable, "-m", "qrtl.cli"]


def run_qrtl(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    return subprocess.run(qrtl_cmd() + list(args), capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)


def one_error_line(res: subprocess.CompletedProcess) -> str:
    assert res.returncode != 0, (res.stdout, res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("qrtl: error:")
    return lines[0]


def _hostile_lambda(sentinel: Path):
    """A Lambda whose function writes ``sentinel`` when called (the path is a constant in its bytecode)."""
    return eval(f"lambda x: (open({str(sentinel)!r}, 'w').write('ran'), x)[1]")  # noqa: S307 - test fixture


def _small_model(sentinel: Path | None, name: str = "hostile", nested: bool = False):
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits

    inp = tf.keras.Input((4,), name="x")
    x = QActivation(quantized_bits(8, 3, alpha=1), name="in_q")(inp)
    if sentinel is not None:
        lam = tf.keras.layers.Lambda(_hostile_lambda(sentinel), name="evil")
        if nested:
            i2 = tf.keras.Input((4,), name="inner_x")
            inner = tf.keras.Model(i2, lam(i2), name="inner")
            x = inner(x)
        else:
            x = lam(x)
    x = QDense(3, kernel_quantizer=quantized_bits(4, 0, alpha=1), bias_quantizer=quantized_bits(4, 0, alpha=1),
               name="fc")(x)
    model = tf.keras.Model(inp, x, name=name)
    model.layers[-1].set_weights([np.full((4, 3), 0.25, np.float32), np.zeros(3, np.float32)])
    if sentinel is not None:
        sentinel.unlink(missing_ok=True)  # building the graph called the lambda once
    return model


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    sentinel = d / "SENTINEL_RAN"
    model = _small_model(sentinel)
    model.save(d / "hostile.h5")
    (d / "hostile.json").write_text(model.to_json())
    model.save_weights(d / "hostile_weights.h5")
    assert not sentinel.exists()
    return d, sentinel


def test_keras2_safe_mode_is_not_enough(hostile):
    """The hazard is real: tf.keras.models.load_model(..., safe_mode=True) runs the Lambda of an .h5."""
    d, sentinel = hostile
    code = ("import tensorflow as tf; "
            f"tf.keras.models.load_model({str(d / 'hostile.h5')!r}, safe_mode=True, compile=False, "
            "custom_objects=__import__('qat.importers.from_qkeras', fromlist=['x'])._custom_objects())")
    subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=ROOT, timeout=600)
    assert sentinel.exists(), "Keras did not run the Lambda: the safe-loading tests would prove nothing"
    sentinel.unlink()


def test_h5_with_lambda_is_refused_and_nothing_ran(hostile, tmp_path):
    d, sentinel = hostile
    err = one_error_line(run_qrtl("convert", str(d / "hostile.h5"), "-o", str(tmp_path / "n")))
    assert "hostile.h5" in err and "'hostile/evil'" in err and "(Lambda)" in err, err
    assert not sentinel.exists()
    assert not (tmp_path / "n").exists()


def test_json_architecture_with_lambda_is_refused_and_nothing_ran(hostile, tmp_path):
    d, sentinel = hostile
    err = one_error_line(run_qrtl("convert", str(d / "hostile.json"), "--weights", str(d / "hostile_weights.h5"),
                                  "-o", str(tmp_path / "n")))
    assert "hostile.json" in err and "'hostile/evil'" in err and "(Lambda)" in err, err
    assert not sentinel.exists()


def test_lambda_inside_a_nested_model_is_refused(tmp_path, capsys):
    sentinel = tmp_path / "SENTINEL_NESTED"
    _small_model(sentinel, "outer", nested=True).save(tmp_path / "nested.h5")
    assert main(["convert", str(tmp_path / "nested.h5"), "-o", str(tmp_path / "n")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'outer/inner/evil' (Lambda)" in err[0], err
    assert not sentinel.exists()


def test_unknown_custom_class_is_refused(tmp_path, capsys):
    import tensorflow as tf

    sentinel = tmp_path / "SENTINEL_CUSTOM"

    class Sneaky(tf.keras.layers.Layer):
        def call(self, x):
            Path(sentinel).write_text("ran")
            return x

    inp = tf.keras.Input((4,), name="x")
    model = tf.keras.Model(inp, Sneaky(name="sneaky")(inp), name="custom")
    sentinel.unlink(missing_ok=True)
    model.save(tmp_path / "custom.h5")
    assert main(["convert", str(tmp_path / "custom.h5"), "-o", str(tmp_path / "n")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'custom/sneaky' (Sneaky)" in err[0] and "unknown custom object" in err[0], err
    assert not sentinel.exists()


def _edit_config(src: Path, dst: Path, edit) -> None:
    cfg = json.loads(src.read_text())
    edit(cfg)
    dst.write_text(json.dumps(cfg))


def test_foreign_module_and_quantizer_strings_are_refused(hostile, tmp_path, capsys):
    """Keras imports a config's ``module``; QKeras evaluates quantizer strings by name: both are checked."""
    base = tmp_path / "ok.json"
    base.write_text(_small_model(None, "plain").to_json())
    w = tmp_path / "w.h5"
    _small_model(None, "plain").save_weights(w)

    def fc(cfg):
        return next(layer for layer in cfg["config"]["layers"] if layer["config"]["name"] == "fc")

    def foreign_module(cfg):
        fc(cfg)["config"]["kernel_initializer"]["module"] = "antigravity"

    def bad_quantizer(cfg):
        q = next(layer for layer in cfg["config"]["layers"] if layer["config"]["name"] == "in_q")
        q["config"]["activation"] = "_create_variable_name('x')"

    for edit, needle in ((foreign_module, "module 'antigravity'"), (bad_quantizer, "_create_variable_name")):
        p = tmp_path / f"{edit.__name__}.json"
        _edit_config(base, p, edit)
        assert main(["convert", str(p), "--weights", str(w), "-o", str(tmp_path / "n")]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0] and "plain" in err[0], err
    assert main(["convert", str(base), "--weights", str(w), "-o", str(tmp_path / "n")]) == 0


def test_weights_only_h5_is_refused_as_a_model(hostile, tmp_path, capsys):
    d, _ = hostile
    assert main(["convert", str(d / "hostile_weights.h5"), "-o", str(tmp_path / "n")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no model configuration" in err[0]


def test_normal_keras_model_still_converts(tmp_path):
    res = run_qrtl("convert", str(EXAMPLE / "jet_tagger.h5"), "-o", str(tmp_path / "jet.net"))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "jet.net").is_dir()


# ---- ONNX external data ---------------------------------------------------------------

def _hand_qonnx(folder: Path, location: str | None, data_file: Path | None = None) -> Path:
    """A small QONNX graph (Quant -> MatMul -> Quant); with ``location`` its weight is external data there."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.linspace(-1, 1, 24, dtype=np.float32).reshape(6, 4)
    inits = [numpy_helper.from_array(v, n) for n, v in (
        ("w", w), ("s_in", np.float32(0.125)), ("s_w", np.float32(0.125)), ("zero", np.float32(0)),
        ("b8", np.float32(8)), ("b4", np.float32(4)), ("s_out", np.float32(0.25)))]
    if location is not None:
        t = inits[0]
        raw = w.tobytes()
        target = data_file if data_file is not None else folder / location
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(raw)
        t.ClearField("float_data")
        t.raw_data = b""
        t.data_location = TensorProto.EXTERNAL
        for k, v in (("location", location), ("offset", "0"), ("length", str(len(raw)))):
            e = t.external_data.add()
            e.key, e.value = k, v
    q = "qonnx.custom_op.general"
    nodes = [
        helper.make_node("Quant", ["x", "s_in", "zero", "b8"], ["xq"], domain=q, signed=1, narrow=0,
                         rounding_mode="ROUND"),
        helper.make_node("Quant", ["w", "s_w", "zero", "b4"], ["wq"], domain=q, signed=1, narrow=1,
                         rounding_mode="ROUND"),
        helper.make_node("MatMul", ["xq", "wq"], ["acc"]),
        helper.make_node("Quant", ["acc", "s_out", "zero", "b8"], ["y"], domain=q, signed=1, narrow=0,
                         rounding_mode="ROUND"),
    ]
    graph = helper.make_graph(nodes, "ext", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(q, 1)])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_onnx_external_data_inside_folder_converts(tmp_path):
    from qat.importers.from_qonnx import import_qonnx

    inline = import_qonnx(_hand_qonnx(tmp_path / "inline", None))
    ext = import_qonnx(_hand_qonnx(tmp_path / "ext", "data/weights.bin"))
    assert np.array_equal(ext.ops[0].arrays["weight"], inline.ops[0].arrays["weight"])
    assert main(["convert", str(tmp_path / "ext" / "model.onnx"), "-o", str(tmp_path / "n")]) == 0


@pytest.mark.parametrize("case", ["dotdot", "absolute", "symlink"])
def test_onnx_external_data_outside_folder_is_refused(case, tmp_path, capsys):
    outside = tmp_path / "secret" / "outside.bin"
    folder = tmp_path / "model"
    if case == "dotdot":
        path = _hand_qonnx(folder, "../secret/outside.bin", outside)
        reason = "escapes the model's folder"
    elif case == "absolute":
        path = _hand_qonnx(folder, str(outside), outside)
        reason = "is an absolute path"
    else:
        folder.mkdir(parents=True)
        outside.parent.mkdir(parents=True, exist_ok=True)
        (folder / "link").symlink_to(outside.parent, target_is_directory=True)
        path = _hand_qonnx(folder, "link/outside.bin", outside)
        reason = "leaves the model's folder through a symlink"
    assert outside.exists()  # the data is there and valid: the refusal is not a read error
    assert main(["convert", str(path), "-o", str(tmp_path / "n")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.onnx" in err[0] and "initializer 'w'" in err[0] and reason in err[0], err


def test_torch_load_uses_weights_only():
    """Every torch.load in the project (package and tests) passes weights_only=True."""
    import re

    offenders = []
    files = [p for d in ROOT.iterdir() if d.is_dir() and not d.name.startswith(".") for p in d.rglob("*.py")]
    for p in files:
        for m in re.finditer(r"torch\.load\(([^()]|\([^()]*\))*\)", p.read_text(errors="replace")):
            if "weights_only=True" not in m.group(0):
                offenders.append(f"{p.relative_to(ROOT)}: {m.group(0)}")
    assert not offenders, offenders
