"""The qrtl command line: convert / predict / info on the shipped example, and
one-line errors with a non-zero exit for bad input."""
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
QRTL = [sys.executable, "-m", "qrtl.cli"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(QRTL + list(args), capture_output=True, text=True, env=env, cwd=ROOT)


def one_line_error(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 1, (res.stdout, res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("qrtl: error:")]
    assert len(lines) == 1, res.stderr
    return lines[0]


@pytest.fixture(scope="module")
def jet_net(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("jet") / "jet.net"
    assert main(["convert", str(EXAMPLE / "jet_tagger.h5"), "-o", str(out),
                 "--json", str(out.parent / "report.json")]) == 0
    return out


@pytest.fixture(scope="module")
def keras_logits():
    import tensorflow as tf

    from qat.importers.from_qkeras import load_model

    model = load_model(EXAMPLE / "jet_tagger.h5")
    pre = tf.keras.Model(model.inputs, model.layers[-2].output)
    return lambda x: pre.predict(x.astype(np.float32), verbose=0, batch_size=4096).astype(np.float64)


def test_help_explains_each_command():
    for cmd in ([], ["convert"], ["predict"], ["info"]):
        res = run_cli(*cmd, "--help")
        assert res.returncode == 0
        assert "usage: qrtl" in res.stdout
    assert "--input-type" in run_cli("convert", "--help").stdout
    assert "--integers" in run_cli("predict", "--help").stdout


def test_convert_predict_matches_qkeras(jet_net, keras_logits, tmp_path):
    rng = np.random.default_rng(7)
    # the input quantizer is quantized_bits(10,3): step 2^-6, range [-8, 8); draw beyond it too
    x = rng.integers(-700, 700, size=(10000, 16)) / 64.0
    x[:100] += 1 / 128.0  # exact rounding ties
    x[100] = 0.0
    x[101] = 1000.0
    x[102] = -1000.0
    np.save(tmp_path / "x.npy", x)
    assert main(["predict", str(jet_net), "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy")]) == 0
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.float64 and y.shape == (10000, 5)
    assert np.array_equal(y, keras_logits(x))


def test_predict_integers_and_raw_input(jet_net, tmp_path):
    from qat.ir import netfile

    net = netfile.load(jet_net)
    t = net.inputs[0].type
    raw = np.random.default_rng(1).integers(t.lo, t.hi + 1, size=(50, 16))
    np.save(tmp_path / "raw.npy", raw)
    assert main(["predict", str(jet_net), "--raw-input", "--integers", "--input", str(tmp_path / "raw.npy"),
                 "-o", str(tmp_path / "yi.npy")]) == 0
    yi = np.load(tmp_path / "yi.npy")
    assert yi.dtype == np.int64
    assert main(["predict", str(jet_net), "--input", str(tmp_path / "raw.npy"), "--raw-input",
                 "-o", str(tmp_path / "yr.npy")]) == 0
    out_t = net.tensor_types()[net.outputs[0]]
    assert np.array_equal(np.load(tmp_path / "yr.npy"), yi * out_t.scale[0])


def test_json_architecture_plus_weights_gives_identical_network(jet_net, tmp_path):
    out = tmp_path / "from_json.net"
    assert main(["convert", str(EXAMPLE / "jet_tagger.json"), "--weights", str(EXAMPLE / "jet_tagger_weights.h5"),
                 "-o", str(out)]) == 0
    for f in sorted(p.relative_to(jet_net) for p in jet_net.rglob("*") if p.is_file()):
        if f.name == "network.json":
            a, b = json.loads((jet_net / f).read_text()), json.loads((out / f).read_text())
            a.pop("name"), b.pop("name")
            a["meta"].pop("keras_model", None), b["meta"].pop("keras_model", None)
            assert a == b
        else:
            assert (jet_net / f).read_bytes() == (out / f).read_bytes(), f


def test_convert_is_deterministic(jet_net, tmp_path):
    again = tmp_path / "again.net"
    assert main(["convert", str(EXAMPLE / "jet_tagger.h5"), "-o", str(again)]) == 0
    files = sorted(p.relative_to(jet_net) for p in jet_net.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for f in files:
        assert (jet_net / f).read_bytes() == (again / f).read_bytes(), f


def test_info_table_and_json(jet_net, capsys):
    assert main(["info", str(jet_net)]) == 0
    text = capsys.readouterr().out
    assert "fc1" in text and "acc bits" in text and "BOPs" in text
    assert main(["info", str(jet_net), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    fc1 = next(r for r in rep["ops"] if r["name"] == "fc1")
    assert fc1["proven_bits"] == fc1["bits"] and fc1["params"] == 16 * 64 + 64
    assert fc1["bops"] == 16 * 64 * 10 * 6
    assert rep["total_params"] == 16 * 64 + 64 + 64 * 32 + 32 + 32 * 32 + 32 + 32 * 5 + 5


def test_argmax_output(tmp_path, keras_logits):
    out = tmp_path / "argmax.net"
    assert main(["convert", str(EXAMPLE / "jet_tagger.h5"), "--output", "argmax", "-o", str(out)]) == 0
    x = np.load(EXAMPLE / "sample_inputs.npy")
    np.save(tmp_path / "x.npy", x)
    assert main(["predict", str(out), "--integers", "--input", str(tmp_path / "x.npy"), "-o",
                 str(tmp_path / "c.npy")]) == 0
    cls = np.load(tmp_path / "c.npy")
    assert np.array_equal(cls[:, 0], np.argmax(keras_logits(x), axis=1))


# ---- bad input: one line, non-zero exit ---------------------------------------

def test_missing_model_file():
    err = one_line_error(run_cli("convert", "no/such/model.h5", "-o", "/tmp/never.net"))
    assert "no/such/model.h5" in err and "no such" in err


def test_corrupt_model_file(tmp_path):
    bad = tmp_path / "corrupt.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 50)
    assert main(["convert", str(bad), "-o", str(tmp_path / "n")]) == 1


def test_json_without_weights(tmp_path, capsys):
    assert main(["convert", str(EXAMPLE / "jet_tagger.json"), "-o", str(tmp_path / "n")]) == 1
    assert "--weights" in capsys.readouterr().err


def test_bad_input_type_text(tmp_path, capsys):
    assert main(["convert", str(EXAMPLE / "jet_tagger.h5"), "--input-type", "fixed<0,3>", "-o",
                 str(tmp_path / "n")]) == 1
    assert "impossible bit width" in capsys.readouterr().err


def test_predict_wrong_shape(jet_net, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((3, 15)))
    assert main(["predict", str(jet_net), "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy")]) == 1
    err = capsys.readouterr().err
    assert "expected shape (N, 16)" in err and "(3, 15)" in err


def test_predict_unrepresentable_values(tmp_path, capsys):
    """Without an input quantizer, real inputs must be exact values of --input-type."""
    net = tmp_path / "typed.net"
    assert main(["convert", str(EXAMPLE / "jet_tagger.h5"), "--input-type", "fixed<10,4>", "-o", str(net)]) == 0
    np.save(tmp_path / "x.npy", np.full((2, 16), 0.01))
    assert main(["predict", str(net), "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy")]) == 1
    assert "not representable" in capsys.readouterr().err
    np.save(tmp_path / "x.npy", np.full((2, 16), 20.0))
    assert main(["predict", str(net), "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy")]) == 1
    assert "outside the input type" in capsys.readouterr().err


def test_predict_raw_out_of_range(jet_net, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.full((2, 16), 512))
    assert main(["predict", str(jet_net), "--raw-input", "--input", str(tmp_path / "x.npy"), "-o",
                 str(tmp_path / "y.npy")]) == 1
    assert "outside the input type" in capsys.readouterr().err


def test_predict_unreadable_npy(jet_net, tmp_path, capsys):
    (tmp_path / "x.npy").write_bytes(b"not numpy")
    assert main(["predict", str(jet_net), "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy")]) == 1
    assert "x.npy" in capsys.readouterr().err


def test_info_on_missing_or_corrupt_network(tmp_path, jet_net, capsys):
    assert main(["info", str(tmp_path / "nothing")]) == 1
    assert "no such network" in capsys.readouterr().err
    import shutil

    broken = tmp_path / "broken.net"
    shutil.copytree(jet_net, broken)
    text = (broken / "network.json").read_text()
    (broken / "network.json").write_text(text[: len(text) // 2])
    assert main(["info", str(broken)]) == 1
    assert "corrupt or truncated" in capsys.readouterr().err


def test_usage_error_exit_code():
    res = run_cli("convert")
    assert res.returncode == 2


# ---- one model loader, one vector reader --------------------------------------------------

def test_every_command_takes_a_model_file(jet_net, tmp_path, capsys):
    """predict / info / rtl / hls accept the .h5 itself (converted as by 'qrtl convert'), with the same result."""
    x = np.load(EXAMPLE / "sample_inputs.npy")[:50]
    np.save(tmp_path / "x.npy", x)
    h5 = str(EXAMPLE / "jet_tagger.h5")
    assert main(["predict", h5, "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "a.npy"), "--integers"]) == 0
    assert main(["predict", str(jet_net), "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "b.npy"),
                 "--integers"]) == 0
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))
    capsys.readouterr()
    assert main(["info", h5, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["network"] == json.loads((jet_net / "network.json").read_text())["name"]
    assert main(["rtl", h5, "-o", str(tmp_path / "rtl")]) == 0
    assert main(["rtl", str(jet_net), "-o", str(tmp_path / "rtl2")]) == 0
    for f in sorted((tmp_path / "rtl").iterdir()):
        assert f.read_bytes() == (tmp_path / "rtl2" / f.name).read_bytes(), f.name
    assert main(["hls", h5, "-o", str(tmp_path / "hls"), "--random", "5"]) == 0


def test_hls_vectors_take_the_pytorch_layout(tmp_path):
    """qrtl hls --vectors reads channels-first inputs of a QONNX/PyTorch network like predict and cosim."""
    from qat.ir import golden, netfile
    from qat.ir.network import Input, Network, Op
    from qat.ir.types import IntType

    rng = np.random.default_rng(0)
    w = rng.integers(-3, 4, size=(1, 1, 2, 3))
    net = Network("chw", [Input("x", (3, 4, 2), IntType(5, True))],
                  [Op("c", "conv2d", ["x"], (3, 4, 3), IntType(12, True), {"strides": [1, 1], "padding": "valid"},
                      {"weight": w, "bias": np.zeros(3, dtype=np.int64)})], ["c"], meta={"onnx_input_layout": "NCHW"})
    netfile.save(net, tmp_path / "net")
    x_nchw = rng.integers(-16, 16, size=(6, 2, 3, 4))
    np.save(tmp_path / "x.npy", x_nchw)
    assert main(["hls", str(tmp_path / "net"), "-o", str(tmp_path / "hls"), "--vectors", str(tmp_path / "x.npy"),
                 "--raw-input", "--csim"]) == 0
    rows = (tmp_path / "hls" / "tb_data" / "tb_input.txt").read_text().splitlines()
    nhwc = np.moveaxis(x_nchw, 1, -1)
    assert [int(v) for v in rows[0].split()] == list(nhwc[0].ravel())
    want = golden.run(net, nhwc)["c"]
    got = [int(v) for v in (tmp_path / "hls" / "tb_output.txt").read_text().splitlines()[5].split()]
    assert got == list(want[5].ravel())
