"""Network file format: exact round trip, deterministic bytes, clear errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qat.ir import golden
from qat.ir.netfile import NetFileError, load, save
from qat.ir.network import FORMAT_NAME, FORMAT_VERSION, Input, Network, Op
from qat.ir.types import BinaryType, IntType, MinifloatType


def big_network() -> Network:
    rng = np.random.default_rng(200)
    t8 = IntType(8, True, (2.0 ** -4,))
    mf = MinifloatType(4, 3, variant="ocp", scale=(0.75,))
    ops = [
        Op("conv", "conv2d", ["x"], (3, 3, 4), IntType(20, True, (2.0 ** -9,)), {"strides": [2, 2], "padding": "same"},
           {"weight": rng.integers(-16, 16, size=(3, 3, 2, 4)), "bias": rng.integers(-99, 99, size=4)},
           source="QConv2D(conv)"),
        Op("q1", "requant", ["conv"], (3, 3, 4), IntType(8, True, (2.0 ** -3,)),
           {"rounding": "half_up", "overflow": "saturate", "lo": 0, "hi": 127},
           {"mult": rng.integers(1, 1 << 20, size=4), "shift": np.array([26, 27, 25, 26])}),
        Op("pool", "maxpool", ["q1"], (2, 2, 4), IntType(8, True, (2.0 ** -3,)),
           {"pool": [2, 2], "strides": [2, 2], "padding": "same", "dims": 2}),
        Op("flat", "reshape", ["pool"], (16,), IntType(8, True, (2.0 ** -3,)), {"shape": [16]}),
        Op("fc", "dense", ["flat"], (6,), IntType(20), {"weight_scale": [0.125]},
           {"weight": rng.integers(-8, 8, size=(16, 6)), "bias": rng.integers(-9, 9, size=6)}),
        Op("mf", "requant", ["fc"], (6,), mf, {"rounding": "half_even"},
           {"mult": np.array([3]), "shift": np.array([4])}),
        Op("sgn", "threshold", ["fc"], (6,), BinaryType(), {"step": 2},
           {"thresholds": rng.integers(-50, 50, size=(6, 1)), "base": np.full(6, -1), "direction": np.ones(6, np.int64)}),
        Op("bfc", "bdense", ["sgn"], (5,), BinaryType(), {},
           {"weight": rng.integers(0, 2, size=(6, 5)).astype(np.uint8), "threshold": np.array([0, 1, -1, 2, -2]),
            "direction": np.array([1, -1, 1, -1, 1])}),
        Op("bfc2", "bdense", ["bfc"], (4,), IntType(4), {}, {"weight": rng.integers(0, 2, size=(5, 4)).astype(np.uint8)}),
        Op("lut", "lut", ["bfc2"], (4,), IntType(6, False), {"in_lo": -8}, {"table": rng.integers(0, 64, size=16)}),
        Op("clip", "clip", ["lut"], (4,), IntType(6, False), {"lo": 0, "hi": 31}),
        Op("cat", "concat", ["clip", "lut"], (8,), IntType(6, False)),
        Op("add", "add", ["cat", "cat"], (8,), IntType(8, False)),
        Op("am", "argmax", ["add"], (1,), IntType(3, False), source="--output argmax"),
    ]
    return Network("big net/with odd:name", [Input("x", (5, 5, 2), t8, {"kind": "fixed", "shift": 4,
                                                                        "rounding": "half_even", "lo": -128,
                                                                        "hi": 127})],
                   ops, ["am", "mf"], notes=["a note", "ünïcode note"], meta={"framework": "test", "seed": 200})


def assert_same_network(a: Network, b: Network) -> None:
    assert a.name == b.name and a.outputs == b.outputs and a.notes == b.notes and a.meta == b.meta
    assert len(a.inputs) == len(b.inputs)
    for i, j in zip(a.inputs, b.inputs):
        assert (i.name, tuple(i.shape), i.type, i.real_quantizer) == (j.name, tuple(j.shape), j.type, j.real_quantizer)
    assert [op.name for op in a.ops] == [op.name for op in b.ops]
    for p, q in zip(a.ops, b.ops):
        assert (p.kind, p.inputs, tuple(p.shape), p.type, p.source) == (q.kind, q.inputs, tuple(q.shape), q.type,
                                                                         q.source)
        assert json.loads(json.dumps(p.attrs)) == q.attrs
        assert sorted(p.arrays) == sorted(q.arrays)
        for k in p.arrays:
            assert q.arrays[k].shape == np.asarray(p.arrays[k]).shape
            assert np.array_equal(q.arrays[k], p.arrays[k]), (p.name, k)
            assert q.arrays[k].dtype in (np.int64, np.uint8)


def all_bytes(root: Path) -> dict[str, bytes]:
    return {str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()}


@pytest.fixture
def saved(tmp_path) -> tuple[Network, Path]:
    net = big_network()
    path = tmp_path / "net"
    save(net, path)
    return net, path


def test_round_trip(saved):
    net, path = saved
    back = load(path)
    assert_same_network(net, back)
    assert back.op("mf").type == MinifloatType(4, 3, 7, "ocp", (0.75,))
    assert back.op("sgn").type == BinaryType()
    assert back.op("bfc").arrays["weight"].dtype == np.uint8
    # loading network.json directly works too
    assert_same_network(net, load(path / "network.json"))
    # and the loaded network computes the same
    x = np.random.default_rng(1).integers(-128, 128, size=(30, 5, 5, 2))
    a, b = golden.run(net, x, keep_all=True), golden.run(back, x, keep_all=True)
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def test_save_is_deterministic(tmp_path):
    save(big_network(), tmp_path / "a")
    save(big_network(), tmp_path / "b")
    first = all_bytes(tmp_path / "a")
    assert first == all_bytes(tmp_path / "b")
    assert "network.json" in first and sum(k.endswith(".npy") for k in first) == 16
    # re-saving into the same directory (replacing it) gives the same bytes, and a load/save round trip too
    save(big_network(), tmp_path / "a")
    assert all_bytes(tmp_path / "a") == first
    save(load(tmp_path / "a"), tmp_path / "c")
    assert all_bytes(tmp_path / "c") == first


def test_graph_file_contents(saved):
    _, path = saved
    doc = json.loads((path / "network.json").read_text())
    assert doc["format"] == FORMAT_NAME and doc["version"] == FORMAT_VERSION
    spec = doc["ops"][0]["arrays"]["weight"]
    assert spec["shape"] == [3, 3, 2, 4] and spec["dtype"] == "int64" and len(spec["sha256"]) == 64
    assert (path / spec["file"]).is_file()


def test_save_converts_numpy_scalars_in_attrs(tmp_path):
    net = Network("n", [Input("x", (4,), IntType(8))],
                  [Op("c", "clip", ["x"], (4,), IntType(8), {"lo": np.int64(0), "hi": np.int32(5),
                                                             "f": np.float32(0.5), "l": np.array([1, 2])})], ["c"])
    save(net, tmp_path / "n")
    back = load(tmp_path / "n")
    assert back.op("c").attrs == {"lo": 0, "hi": 5, "f": 0.5, "l": [1, 2]}


def test_save_unserialisable_attr_leaves_no_partial_directory(tmp_path):
    net = Network("n", [Input("x", (4,), IntType(8))],
                  [Op("c", "clip", ["x"], (4,), IntType(8), {"lo": 0, "hi": 5, "bad": object()})], ["c"])
    with pytest.raises(NetFileError, match="JSON"):
        save(net, tmp_path / "n")
    assert not (tmp_path / "n").exists()


def test_save_refuses_to_overwrite_other_directories(tmp_path):
    d = tmp_path / "precious"
    d.mkdir()
    (d / "thesis.tex").write_text("do not delete")
    with pytest.raises(NetFileError, match="refusing to overwrite"):
        save(big_network(), d)
    assert (d / "thesis.tex").read_text() == "do not delete"


def test_save_rejects_arrays_beyond_int64(tmp_path):
    for big in (1 << 63, 1 << 70):
        op = Op("q", "requant", ["x"], (1,), IntType(8), {}, {"mult": np.array([big], dtype=object),
                                                              "shift": np.array([3])})
        net = Network("n", [Input("x", (1,), IntType(2))], [op], ["q"])
        with pytest.raises(NetFileError, match="64-bit"):
            save(net, tmp_path / "n")
        assert not (tmp_path / "n").exists()
    # the int64 extremes themselves are storable
    op = Op("q", "requant", ["x"], (1,), IntType(64), {}, {"mult": np.array([(1 << 63) - 1]),
                                                           "shift": np.array([62])})
    op2 = Op("t", "threshold", ["x"], (1,), IntType(1, False), {},
             {"thresholds": np.array([[-(1 << 63)]]), "base": np.array([0]), "direction": np.array([1])})
    net = Network("n", [Input("x", (1,), IntType(2))], [op, op2], ["q", "t"])
    save(net, tmp_path / "m")
    back = load(tmp_path / "m")
    assert back.op("q").arrays["mult"][0] == (1 << 63) - 1
    assert back.op("t").arrays["thresholds"][0, 0] == -(1 << 63)
    net.op("q").arrays["mult"] = np.array([1.5])
    with pytest.raises(NetFileError, match="integers"):
        save(net, tmp_path / "f")


# ---- load errors -----------------------------------------------------------------------

def test_missing_dir(tmp_path):
    with pytest.raises(NetFileError, match="no such network"):
        load(tmp_path / "nope")


def test_missing_graph(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(NetFileError, match="no network.json"):
        load(tmp_path / "empty")


def edit_graph(path: Path, fn) -> None:
    g = path / "network.json"
    doc = json.loads(g.read_text())
    fn(doc)
    g.write_text(json.dumps(doc))


def test_corrupt_json(saved):
    _, path = saved
    (path / "network.json").write_text("{not json")
    with pytest.raises(NetFileError, match="corrupt or truncated JSON"):
        load(path)


def test_truncated_json(saved):
    _, path = saved
    g = path / "network.json"
    data = g.read_bytes()
    for cut in (0, 1, len(data) // 2, len(data) - 3):
        g.write_bytes(data[:cut])
        with pytest.raises(NetFileError, match="corrupt or truncated JSON"):
            load(path)


def test_binary_garbage_json(saved):
    _, path = saved
    (path / "network.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(NetFileError, match="corrupt or truncated"):
        load(path)


def test_truncated_npy(saved):
    _, path = saved
    f = sorted((path / "arrays").glob("*.npy"))[0]
    data = f.read_bytes()
    f.write_bytes(data[:-8])
    with pytest.raises(NetFileError, match=f"{f.name}.*checksum"):
        load(path)


def test_modified_npy(saved):
    _, path = saved
    f = sorted((path / "arrays").glob("*weight.npy"))[0]
    data = bytearray(f.read_bytes())
    data[-1] ^= 1  # one bit of one weight
    f.write_bytes(bytes(data))
    with pytest.raises(NetFileError, match="checksum mismatch"):
        load(path)


def test_missing_array_file(saved):
    _, path = saved
    f = sorted((path / "arrays").glob("*bias.npy"))[0]
    f.unlink()
    with pytest.raises(NetFileError, match=f"{f.name}.*missing"):
        load(path)


def test_array_with_matching_checksum_but_wrong_shape(saved):
    _, path = saved

    def fn(doc):
        doc["ops"][0]["arrays"]["bias"]["shape"] = [5]
    edit_graph(path, fn)
    with pytest.raises(NetFileError, match="shape/dtype"):
        load(path)


def test_newer_version(saved):
    _, path = saved
    edit_graph(path, lambda d: d.update(version=FORMAT_VERSION + 1))
    with pytest.raises(NetFileError, match=f"version {FORMAT_VERSION + 1} is newer"):
        load(path)


def test_missing_version(saved):
    _, path = saved
    edit_graph(path, lambda d: d.pop("version"))
    with pytest.raises(NetFileError, match="missing format version"):
        load(path)


@pytest.mark.parametrize("fmt", ["onnx", None, 3])
def test_wrong_format_field(saved, fmt):
    _, path = saved
    edit_graph(path, lambda d: d.update(format=fmt))
    with pytest.raises(NetFileError, match="not a qrtl integer network"):
        load(path)


def test_json_not_an_object(saved):
    _, path = saved
    (path / "network.json").write_text("[1, 2, 3]")
    with pytest.raises(NetFileError, match="not a qrtl integer network"):
        load(path)


@pytest.mark.parametrize("mutate", [
    lambda d: d.pop("ops"),
    lambda d: d["ops"][0].pop("kind"),
    lambda d: d["ops"][0].update(arrays=[1, 2]),
    lambda d: d["ops"][0].update(type={"kind": "complex"}),
    lambda d: d["inputs"][0].update(type={"kind": "int", "bits": 0, "signed": True, "scale": [1.0]}),
    lambda d: d["ops"][0]["arrays"]["weight"].pop("sha256"),
])
def test_malformed_graph(saved, mutate):
    _, path = saved
    edit_graph(path, mutate)
    with pytest.raises(NetFileError):
        load(path)


def test_invalid_network_in_file(saved):
    _, path = saved

    def narrow(doc):
        doc["ops"][0]["type"]["bits"] = 8
    edit_graph(path, narrow)
    with pytest.raises(NetFileError, match="op 'conv'.*could overflow"):
        load(path)


def test_array_keys_differing_only_in_unsafe_characters(tmp_path):
    op = Op("t", "threshold", ["x"], (1,), IntType(2, False), {},
            {"thresholds": np.array([[0]]), "base": np.array([0]), "direction": np.array([1]),
             "a b": np.array([1, 2]), "a_b": np.array([3])})
    net = Network("n", [Input("x", (1,), IntType(4))], [op], ["t"])
    save(net, tmp_path / "n")
    back = load(tmp_path / "n").op("t")
    assert back.arrays["a b"].tolist() == [1, 2] and back.arrays["a_b"].tolist() == [3]


def test_attrs_with_non_string_keys_are_rejected_before_writing(tmp_path):
    net = Network("n", [Input("x", (4,), IntType(8))],
                  [Op("c", "clip", ["x"], (4,), IntType(8), {"lo": 0, "hi": 5, 3: "x"})], ["c"])
    with pytest.raises(NetFileError, match="JSON"):
        save(net, tmp_path / "n")
    assert not (tmp_path / "n").exists()
