"""HLS C++ schedules (#12 item 4): --reuse R (layers folded over R clocks) and --io stream (hls::stream
of pixels, line buffers, DATAFLOW), C-simulated with g++ bit for bit against the golden model.

Three small networks, each compiled once (the compiles run in parallel): a 2-D net in io stream and in
io parallel with reuse factors 1, 2 and 4 on convolutions and dense layers; a two-input net in io stream
with 1-D convolutions (explicit padding, strides), binary convolution / pooling / dense / concat, a
whole-tensor requantization (per-element multipliers) that must be re-chunked, and flatten into folded
dense layers.  Random vectors start with the edge vectors (all zero, all minimum, all maximum).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from hls.cpp import hls_cpp
from qat.ir import golden
from qat.ir.geometry import Window
from qat.ir.network import Input, NetworkError
from qat.ir.schedule import parse_reuse
from qat.ir.types import BinaryType, IntType
from rtl_sim.csim import run_csim
from rtl_sim.vectors import random_inputs
from test_hls_cpp import NB, rand_w, rq

N_VECTORS = 400


def net_2d(rng, b: NB | None = None) -> "NB":
    """conv2d same (several outputs ready at the last pixel) / explicit pads / stride 2, maxpool, avgpool,
    requant, flatten -> dense, dense per position of a spatial tensor, argmax; fan-out of r1."""
    b = b or NB("sched2d", [Input("img", (6, 6, 2), IntType(6, True, (2.0 ** -3,)))])
    b.add("c1", "conv2d", ["img"], attrs={"strides": [1, 1], "padding": "same"},
          arrays={"weight": rand_w(rng, (3, 3, 2, 4)), "bias": rand_w(rng, (4,), -200, 200)})  # 72 mults
    a, r = rq(rng.integers(1, 1 << 8, 4), [10, 11, 9, 12], "half_even", lo=0, hi=31)
    b.add("r1", "requant", ["c1"], IntType(5, False), a, r)
    b.add("p1", "maxpool", ["r1"], b.types["r1"], {"pool": [2, 2], "strides": [2, 2], "padding": "valid", "dims": 2})
    b.add("c2", "conv2d", ["p1"], attrs={"strides": [1, 1], "padding": [[1, 0], [0, 1]]},
          arrays={"weight": rand_w(rng, (2, 2, 4, 3)), "bias": rand_w(rng, (3,))})  # (3, 3, 3), 48 mults
    b.add("ap", "avgpool", ["c2"], attrs={"pool": [2, 2], "strides": [1, 1], "padding": "valid", "dims": 2})
    b.add("c3", "conv2d", ["r1"], attrs={"strides": [2, 2], "padding": "same"},
          arrays={"weight": rand_w(rng, (3, 3, 4, 2)), "bias": rand_w(rng, (2,))})  # (3, 3, 2)
    b.add("flat", "reshape", ["ap"], b.types["ap"], {"shape": [12]})
    b.add("fc", "dense", ["flat"], arrays={"weight": rand_w(rng, (12, 4)), "bias": rand_w(rng, (4,), -99, 99)})
    b.add("cls", "argmax", ["fc"], IntType(2, False))
    b.add("fc2", "dense", ["c3"], arrays={"weight": rand_w(rng, (2, 3)), "bias": rand_w(rng, (3,))})  # per pixel
    if b.net.name != "sched2d":
        return b
    return b.done("cls", "fc", "fc2", "p1")


def net_1d_binary(rng, b: NB) -> "NB":
    """Two inputs: conv1d same / explicit pads with stride 3, a requant with per-element multipliers
    (a whole-tensor process, re-chunked for the maxpool after it), flatten -> folded dense; bconv2d with
    thresholds, binary maxpool 'same', bdense per pixel, concat, flatten -> dense on +-1 values."""
    b.add("k1", "conv1d", ["seq"], attrs={"strides": [1], "padding": "same"},
          arrays={"weight": rand_w(rng, (3, 3, 4)), "bias": rand_w(rng, (4,))})  # (10, 4), 36 mults
    b.add("k2", "conv1d", ["seq"], attrs={"strides": [3], "padding": [[1, 2]]},
          arrays={"weight": rand_w(rng, (4, 3, 2)), "bias": rand_w(rng, (2,))})  # (4, 2), 24 mults
    a, r = rq(rng.integers(1, 1 << 6, (10, 4)), rng.integers(3, 8, (10, 4)), "half_away", lo=-31, hi=31)
    b.add("rq", "requant", ["k1"], IntType(6, True), a, r)
    b.add("mp", "maxpool", ["rq"], b.types["rq"], {"pool": [3], "strides": [2], "padding": "same", "dims": 1})
    b.add("flat1", "reshape", ["mp"], b.types["mp"], {"shape": [20]})
    b.add("fc1", "dense", ["flat1"], arrays={"weight": rand_w(rng, (20, 3)), "bias": rand_w(rng, (3,))})  # 60 mults
    n = 3 * 3 * 2
    b.add("bc", "bconv2d", ["bits"], BinaryType(), {"strides": [1, 1], "padding": "valid"},  # (4, 4, 3)
          {"weight": rng.integers(0, 2, size=(3, 3, 2, 3)).astype(np.uint8),
           "threshold": rng.integers(-n // 2, n // 2, size=3).astype(np.int64),
           "direction": np.array([1, -1, 1], dtype=np.int64)})
    b.add("bmp", "maxpool", ["bc"], BinaryType(), {"pool": [3, 3], "strides": [2, 2], "padding": "same",
                                                    "dims": 2})  # (2, 2, 3), padded bottom/right
    b.add("bd", "bdense", ["bmp"], BinaryType(),
          arrays={"weight": rng.integers(0, 2, size=(3, 2)).astype(np.uint8),
                  "threshold": np.array([1, -1], dtype=np.int64), "direction": np.array([1, -1])})
    b.add("cat", "concat", ["bd", "bmp"], BinaryType(), {"axis": -1})  # (2, 2, 5)
    b.add("bflat", "reshape", ["cat"], BinaryType(), {"shape": [20]})
    b.add("bfc", "dense", ["bflat"], arrays={"weight": rand_w(rng, (20, 2)), "bias": rand_w(rng, (2,))})  # 40 mults
    return b


def net_mixed(rng) -> "NB":
    """Both parts in one network (one compile per schedule): three inputs, eight outputs."""
    b = NB("schednet", [Input("img", (6, 6, 2), IntType(6, True, (2.0 ** -3,))), Input("seq", (10, 3), IntType(4, False)),
                     Input("bits", (6, 6, 2), BinaryType())])
    net_2d(rng, b)
    net_1d_binary(rng, b)
    return b.done("cls", "fc", "fc2", "p1", "fc1", "k2", "cat", "bfc")


PROJECTS = {
    "stream": (net_mixed, "stream", {"c1": 2, "c2": 4, "fc": 2, "k1": 4, "k2": 2, "fc1": 4, "bfc": 2}),
    "parallel": (net_mixed, "parallel", {"c1": 4, "c2": 2, "fc": 4, "fc2": 2, "k1": 2, "fc1": 4, "bfc": 2}),
}


@pytest.fixture(scope="module")
def projects(tmp_path_factory):
    root = tmp_path_factory.mktemp("sched")
    jobs = {}
    for k, (name, (fn, io, reuse)) in enumerate(PROJECTS.items()):
        net = fn(np.random.default_rng(7))
        d = root / name
        proj = hls_cpp.generate(net, reuse=reuse, io=io)
        proj.write(d)
        jobs[name] = (net, d, proj, random_inputs(net, N_VECTORS, seed=k))
    with ThreadPoolExecutor(max_workers=2) as pool:
        futs = {name: pool.submit(run_csim, net, d, x) for name, (net, d, _, x) in jobs.items()}
        return {name: (jobs[name], f.result()) for name, f in futs.items()}


@pytest.mark.parametrize("name", list(PROJECTS))
def test_csim_bit_exact(projects, name):
    (net, d, proj, x), res = projects[name]
    assert res.vectors == N_VECTORS
    assert res.ok, res.describe()
    assert res.exact_outputs == res.outputs > 0


def test_edges_and_saturation_are_exercised(projects):
    (net, d, proj, x), res = projects["stream"]
    img = x[0]
    assert (img[0] == -32).all() and (img[1] == 31).all() and (img[2] == 0).all()  # saturating corners
    env = golden.run(net, {i.name: v for i, v in zip(net.inputs, x)}, keep_all=True)
    assert (env["r1"] == 0).any() and (env["r1"] == 31).any()  # the requant saturates both ways


def test_parallel_reuse_pragmas(projects):
    (net, d, proj, x), res = projects["parallel"]
    src = (d / "firmware" / "schednet.cpp").read_text()
    top = src[src.index("void schednet("):]
    assert "#pragma HLS PIPELINE II=4" in top.splitlines()[1]  # the top: the largest reuse factor
    for layer, r, n in (("c1", 4, 72), ("c2", 2, 48), ("fc", 4, 48), ("fc2", 2, 6)):
        fn = src[src.index(f"static void fold_{layer}("):]
        fn = fn[:fn.index("\n}\n")]
        assert f"#pragma HLS PIPELINE II={r}" in fn
        assert f"#pragma HLS ARRAY_PARTITION variable=w_{layer} block factor={n // r} dim=1" in fn
        assert f"for (int ir = 0; ir < {r}; ir++)" in fn and f"for (int im = 0; im < {n // r}; im++)" in fn
        assert f"fold_{layer}(" in top
    assert "static void fold_c3(" not in src  # reuse 1: unrolled in the top as before
    assert "#pragma HLS ARRAY_PARTITION variable=w_c3 complete dim=0" in top
    sched = proj.manifest["schedule"]
    assert sched == {"io": "parallel", "reuse": PROJECTS["parallel"][2], "ii_clocks": 4, "processes": {}}
    assert proj.manifest["ops"]["c1"]["multipliers"] == 36 * 72 // 4  # 36 output pixels, each folded 4x


def test_stream_structure(projects):
    (net, d, proj, x), res = projects["stream"]
    src = (d / "firmware" / "schednet.cpp").read_text()
    hdr = (d / "firmware" / "schednet.h").read_text()
    assert '#include "hls_stream.h"' in hdr and "typedef qrtl_chunk<in0_t, CH_IN0> in0_chunk_t;" in hdr
    assert "#define CH_IN0 2" in hdr and "#define CH_OUT2 3" in hdr  # fc2: a pixel of 3 channels per read
    assert "void schednet(hls::stream<in0_chunk_t> &in0, hls::stream<in1_chunk_t> &in1" in src
    assert "#pragma HLS DATAFLOW" in src and "#pragma HLS INTERFACE mode=axis port=in0" in src
    c1 = src[src.index("static void proc_c1("):]
    c1 = c1[:c1.index("\n}\n")]
    assert "ap_int<6> lb[4][6][2];" in c1  # 4 rows (3 + the output's lag) of 6 pixels x 2 channels
    assert "#pragma HLS PIPELINE II=2" in c1 and "block factor=36 dim=1" in c1
    fc = src[src.index("static void proc_fc("):]
    fc = fc[:fc.index("\n}\n")]
    assert "for (int j = 0; j < 4; j++)" in fc  # 4 pixels of 3 channels after the flatten
    sched = proj.manifest["schedule"]
    assert sched["io"] == "stream" and sched["reuse"] == PROJECTS["stream"][2]
    assert sched["processes"]["proc_c1"] == 2 * proj.manifest["ops"]["c1"]["iterations"]
    assert sched["ii_clocks"] == max(sched["processes"].values())
    kinds = {name: info["stream"] for name, info in proj.manifest["ops"].items()}
    assert kinds["c1"] == "window" and kinds["r1"] == "pixel" and kinds["fc"] == "dense" and kinds["cls"] == "whole"
    assert "static void rechunk_rq(" in src  # per-element requant -> whole tensor -> pixels for the maxpool
    assert "static void fanout_seq(" in src  # seq feeds two convolutions
    assert kinds["rq"] == "whole" and kinds["bc"] == "window" and kinds["cat"] == kinds["bd"] == "pixel"


def test_generation_is_deterministic():
    for fn, io, reuse in PROJECTS.values():
        a = hls_cpp.generate(fn(np.random.default_rng(3)), reuse=reuse, io=io).files
        b = hls_cpp.generate(fn(np.random.default_rng(3)), reuse=reuse, io=io).files
        assert a == b


def test_default_is_unchanged_by_schedule_options():
    net = net_2d(np.random.default_rng(1))
    a = hls_cpp.generate(net).files
    b = hls_cpp.generate(net, reuse={}, io="parallel").files
    c = hls_cpp.generate(net, reuse="1").files
    assert a == b
    assert a["firmware/sched2d.cpp"] == c["firmware/sched2d.cpp"] and "PIPELINE II=1" in a["firmware/sched2d.cpp"]


@pytest.mark.parametrize("geom", [((7, 7, 1), (3, 3), (1, 1), "same"), ((6, 9, 2), (2, 3), (2, 2), "same"),
                                  ((5, 5, 1), (3, 3), (1, 1), [[2, 2], [2, 0]]), ((1, 12, 2), (1, 5), (1, 3), "valid"),
                                  ((8, 8, 1), (3, 3), (3, 1), [[0, 3], [1, 1]]), ((4, 4, 3), (4, 4), (1, 1), "same")])
def test_line_buffer_never_loses_a_row_in_use(geom):
    """Replay the stream process's schedule with the computed buffer size: every tap an output reads is
    the pixel it should be (a circular buffer of RB rows), and every input pixel is read."""
    shape, kernel, strides, padding = geom
    g = Window.of(shape, kernel, strides, padding, 2)
    t_iter, rb = hls_cpp.stream_schedule(g)
    lb = {}
    oy = ox = 0
    hw = g.h * g.w
    for t in range(t_iter):
        if t < hw:
            lb[(t // g.w % rb, t % g.w)] = divmod(t, g.w)
        seen = min(t, hw - 1)
        ry = min(oy * g.sh - g.pt + g.kh - 1, g.h - 1)
        rx = min(ox * g.sw - g.pl + g.kw - 1, g.w - 1)
        if oy < g.oh and ry * g.w + rx <= seen:
            for ky in range(g.kh):
                for kx in range(g.kw):
                    iy, ix = oy * g.sh + ky - g.pt, ox * g.sw + kx - g.pl
                    if 0 <= iy < g.h and 0 <= ix < g.w:
                        assert lb[(iy % rb, ix)] == (iy, ix)
            ox += 1
            if ox == g.ow:
                ox, oy = 0, oy + 1
    assert oy == g.oh and t_iter >= hw
    assert rb <= g.kh + 1


def test_parse_reuse():
    net = net_2d(np.random.default_rng(0))
    assert parse_reuse("4", net) == {"c1": 4, "c2": 4, "c3": 4, "fc": 4, "fc2": 4}
    assert parse_reuse("2, fc=4", net) == {"c1": 2, "c2": 2, "c3": 2, "fc": 4, "fc2": 2}
    assert parse_reuse("fc=4,c1=2", net) == {"fc": 4, "c1": 2}
    assert parse_reuse(None, net) == parse_reuse("", net) == {}


@pytest.mark.parametrize("kw, msg", [
    ({"reuse": "fc9=2"}, "--reuse 'fc9=2': network 'sched2d' has no layer 'fc9'"),
    ({"reuse": "p1=2"}, "op 'p1' (maxpool) has no multiplications to fold"),
    ({"reuse": "fc=0"}, "must be at least 1"),
    ({"reuse": "fc=x"}, "must be an integer"),
    ({"reuse": {"c2": 5}}, "--reuse c2=5: op 'c2' (conv2d) has 48 multiplications per output position (2 x 2 x 4 x 3)"),
    ({"reuse": {"fc": 5}, "io": "stream"}, "--reuse fc=5: op 'fc' (dense) has 48 multiplications"),
    ({"reuse": {"fc": 16}, "io": "stream"}, "--reuse fc=16: with --io stream op 'fc' (dense) takes 3 inputs per read "
                                           "(3 x 4 = 12 multiplications)"),
    ({"io": "serial"}, "--io 'serial': choose one of parallel, stream"),
])
def test_bad_options_one_line(kw, msg):
    net = net_2d(np.random.default_rng(0))
    with pytest.raises(NetworkError) as e:
        hls_cpp.generate(net, **kw)
    assert msg in str(e.value) and "\n" not in str(e.value)


def test_stream_needs_spatial_inputs():
    b = NB("flatnet", [Input("v", (8,), IntType(4, True))])
    b.add("fc", "dense", ["v"], arrays={"weight": np.ones((8, 2), np.int64), "bias": np.zeros(2, np.int64)})
    with pytest.raises(NetworkError, match=r"--io stream: input 'v' has shape \(8,\), not spatial"):
        hls_cpp.generate(b.done("fc"), io="stream")


def test_cli_options(tmp_path, capsys):
    from qat.ir import netfile
    from qrtl.cli import main

    net = net_2d(np.random.default_rng(0))
    netfile.save(net, tmp_path / "n.net")
    assert main(["hls", str(tmp_path / "n.net"), "-o", str(tmp_path / "s"), "--io", "stream", "--reuse", "c1=4",
                 "--random", "5"]) == 0
    assert "io stream, II " in capsys.readouterr().out
    assert "PIPELINE II=4" in (tmp_path / "s" / "firmware" / "sched2d.cpp").read_text()
    assert main(["hls", str(tmp_path / "n.net"), "-o", str(tmp_path / "b"), "--reuse", "c1=5"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--reuse c1=5" in err[0] and "72 multiplications" in err[0]
