"""ECON-T style autoencoder: synthetic data, telescope loss, EMD, and the
train -> save -> convert -> golden path (bit for bit against QKeras).

Hand-computed cases spell out their arithmetic in comments.  The end-to-end
test trains for a few seconds on a small set, then compares the golden
integer model's latent codes with QKeras's on 10,000 generated modules with
``==`` (no tolerance), and does the same for the shipped checkpoint.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from qat.econ import data as D
from qat.econ import metrics as M

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "examples" / "econ_autoencoder"
R = 16.6 / math.sqrt(3.0)  # hexagon side (cm)
PITCH = R / 4  # distance between neighbouring cell centres inside a third


@pytest.fixture(scope="module")
def batch():
    return D.generate(3000, seed=7)


# ---- geometry and layouts ------------------------------------------------------------------------

def test_geometry():
    c = D.cell_centres()
    assert c.shape == (48, 2)
    assert len({tuple(np.round(p, 9)) for p in c}) == 48
    # every centre lies in its own cell, inside the hexagon (|p| < R)
    assert np.array_equal(D.point_to_cell(c), np.arange(48))
    assert np.all(np.linalg.norm(c, axis=1) < R)
    # cell (0, 0, 0) at (a0 + b0)/8 with a0 = R(0, 1), b0 = R(-sqrt3/2, -1/2)
    assert np.allclose(c[0], [-R * math.sqrt(3) / 16, R / 16])
    # neighbours inside a third are R/4 apart; the three centre cells are R/8*sqrt(3) apart
    assert math.isclose(np.linalg.norm(c[D.cell_index(0, 1, 2)] - c[D.cell_index(0, 2, 2)]), PITCH)
    assert math.isclose(np.linalg.norm(c[0] - c[16]), R * math.sqrt(3) / 8)
    # cell areas: rhombus of side R/4 and angle 120 deg; total = hexagon area
    poly = D.cell_polygons()
    x, y = poly[..., 0], poly[..., 1]
    area = 0.5 * np.abs(np.sum(x * np.roll(y, -1, 1) - np.roll(x, -1, 1) * y, axis=1))
    assert np.allclose(area, (R / 4) ** 2 * math.sin(math.radians(120)))
    assert math.isclose(area.sum(), 3 * math.sqrt(3) / 2 * R ** 2)
    # points outside the hexagon -> -1
    assert np.all(D.point_to_cell(np.array([[0.0, R + 0.01], [R, 0.0], [20.0, 20.0]])) == -1)


def test_layout_8x8_and_4x4x3():
    pos = D.CELL_TO_8X8
    assert len(set(pos.tolist())) == 48
    rows, cols = pos // 8, pos % 8
    # padding is exactly the bottom-right quadrant
    assert sorted(D.PAD_8X8.tolist()) == [8 * r + c for r in range(4, 8) for c in range(4, 8)]
    # thirds: 0 top-left, 1 top-right, 2 bottom-left
    t = np.arange(48) // 16
    assert np.all((rows[t == 0] < 4) & (cols[t == 0] < 4))
    assert np.all((rows[t == 1] < 4) & (cols[t == 1] >= 4))
    assert np.all((rows[t == 2] >= 4) & (cols[t == 2] < 4))
    # the three centre cells meet around the image centre
    assert [(rows[c], cols[c]) for c in (0, 16, 32)] == [(3, 3), (3, 4), (4, 3)]
    # boundary 0|1: cell (0,0,k) faces (1,k,0) and they are left/right image neighbours
    cc = D.cell_centres()
    for k in range(4):
        a, b = D.cell_index(0, 0, k), D.cell_index(1, k, 0)
        assert rows[a] == rows[b] and cols[b] == cols[a] + 1
        assert np.linalg.norm(cc[a] - cc[b]) < 1.01 * PITCH  # mirror neighbours across the boundary
    # image neighbours inside a third are geometric neighbours
    for c in range(48):
        for d in range(48):
            if c // 16 == d // 16 and abs(rows[c] - rows[d]) + abs(cols[c] - cols[d]) == 1:
                assert math.isclose(np.linalg.norm(cc[c] - cc[d]), PITCH)
    v = np.random.default_rng(0).random((5, 48))
    img = D.to_8x8(v)
    assert img.shape == (5, 8, 8, 1) and np.all(img.reshape(5, 64)[:, D.PAD_8X8] == 0)
    assert np.array_equal(D.from_8x8(img), v)
    a = D.to_4x4x3(v)
    assert a.shape == (5, 4, 4, 3) and a[2, 1, 3, 2] == v[2, D.cell_index(2, 1, 3)]
    assert np.array_equal(D.from_4x4x3(a), v)


# ---- generator ---------------------------------------------------------------------------------

def test_generator_normalisation_and_8bit_grid(batch):
    q, k, u = batch.charge, batch.shift, batch.codes
    assert q.shape == (3000, 48) and q.dtype.kind == "i"
    s = q.sum(axis=1)
    assert np.all(s > 0)
    # zero suppression: every kept charge is at least the threshold
    assert np.all((q == 0) | (q >= D.DEFAULT_PARAMS.zs_threshold_lsb))
    # bit-shift rule: 2^(k-1) < sum <= 2^k
    assert np.all(s <= 2 ** k) and np.all((k == 0) | (s > 2 ** (k - 1).clip(0)))
    # 8-bit codes = round-half-up(q * 2^8 / 2^k), saturating at 255 (independent exact integer reference)
    ref = np.array([[min(255, (2 * int(qc) * 256 + 2 ** int(kk)) // 2 ** (int(kk) + 1)) for qc in row]
                    for row, kk in zip(q, k)])
    assert np.array_equal(u, ref)
    assert u.min() >= 0 and u.max() <= 255
    # normalised sum close to 1 in units of 2^-8: sum(q)/2^k in (1/2, 1], rounding <= 1/2 per cell
    assert np.all(u.sum(1) <= 256 + 24) and np.all(u.sum(1) >= 128 - 24)
    # inputs: exact multiples of 2^-6 in [0, 255/64], padding zero, as the 10-bit input quantizer sees them
    x = batch.x
    assert x.shape == (3000, 8, 8, 1) and x.dtype == np.float32
    flat = x.reshape(3000, 64)
    assert np.all(flat[:, D.PAD_8X8] == 0)
    assert np.array_equal(flat[:, D.CELL_TO_8X8] * 64, u.astype(np.float32))
    assert np.allclose(batch.y.sum(1), 1.0)
    assert np.array_equal(batch.x_4x4x3(), D.to_4x4x3(u / 64.0).astype(np.float32))
    # all three kinds are generated; showers deposit more than pile-up alone
    assert set(np.unique(batch.kind)) == {0, 1, 2}
    assert np.median(s[batch.kind == 1]) > np.median(s[batch.kind == 0])


def test_normalise_hand_cases():
    # sum 3 -> k = 2 (2^1 < 3 <= 4): codes q << 6
    k, u = D.normalise(np.array([[1, 2] + [0] * 46]))
    assert k[0] == 2 and u[0, 0] == 64 and u[0, 1] == 128
    # sum 1024 -> k = 10: u = (q + 2) >> 2 (round half up); a single cell with everything saturates
    q = np.zeros((2, 48), dtype=np.int64)
    q[0, :4] = [2, 6, 1000, 16]  # 2/4 -> 1 (tie up), 6/4 = 1.5 -> 2, 1000/4 = 250, 16/4 = 4
    q[1, 5] = 1024
    k, u = D.normalise(q)
    assert list(k) == [10, 10]
    assert list(u[0, :4]) == [1, 2, 250, 4] and u[1, 5] == 255


def test_generator_determinism():
    a = D.generate(500, seed=11)
    b = D.generate(500, seed=11)
    for f in ("energy", "charge", "shift", "codes", "kind"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
    # prefix property: a smaller request gives the first modules of a larger one
    c = D.generate(100, seed=11)
    assert np.array_equal(c.codes, a.codes[:100]) and np.array_equal(c.charge, a.charge[:100])
    d = D.generate(500, seed=12)
    assert not np.array_equal(d.codes, a.codes)
    assert np.mean(np.all(d.codes == a.codes, axis=1)) < 0.05
    e = D.generate(500, seed=11, params=D.EconDataParams(noise_mip=0.5))
    assert not np.array_equal(e.codes, a.codes)


# ---- telescope loss ----------------------------------------------------------------------------

def _onehot(*pairs):
    v = np.zeros((1, 48))
    for c, w in pairs:
        v[0, c] = w
    return v


def test_super_cells_and_weights():
    sc = D.super_cells()
    assert sc.shape == (36, 4) and all(len(set(r)) == 4 for r in sc.tolist())
    n_c = np.bincount(sc.ravel(), minlength=48)
    # within a third: corner (3,3) in 1 window, edge (2,3) in 2, inner (2,2) in 4;
    # (0,0) is in 1 window of its third + 1 window across each of its two boundaries
    assert n_c[D.cell_index(0, 3, 3)] == 1 and n_c[D.cell_index(0, 2, 3)] == 2 and n_c[D.cell_index(0, 2, 2)] == 4
    assert n_c[D.cell_index(1, 0, 0)] == 3
    w = D.super_cell_weights()
    assert math.isclose(w.sum(), 12.0)  # 48 cells x 1/4
    # window (2,2) of a third: cells n = 4, 2, 2, 1 -> 1/4 (1/4 + 1/2 + 1/2 + 1) = 0.5625
    i = [r.tolist() for r in sc].index([D.cell_index(0, 2, 2), D.cell_index(0, 2, 3), D.cell_index(0, 3, 2),
                                        D.cell_index(0, 3, 3)])
    assert math.isclose(w[i], 0.5625)


def test_telescope_loss_hand_cases():
    import tensorflow as tf

    from qat.econ.training import telescope_loss, telescope_loss_np

    A, B = D.cell_index(0, 3, 3), D.cell_index(1, 3, 3)  # outer corners of thirds 0 and 1
    A2 = D.cell_index(0, 2, 2)
    cases = []
    # 1. all energy moved from corner A (third 0) to corner B (third 1)
    #    cells:  (1^2*1 + 1^2*1)/48                      -> x4 = 8/48
    #    2x2:    A and B each in one window of weight 0.5625, (1*1*0.5625)*2/36 = 0.03125 -> x2 = 0.0625
    #    thirds: (1 + 1)/3                               -> x1 = 2/3
    cases.append((_onehot((A, 1.0)), _onehot((B, 1.0)), 8 / 48 + 0.0625 + 2 / 3))
    # 2. y = 0.75 at A + 0.25 at A2 (same third), yhat = 1.0 at A
    #    cells:  A: 0.25^2*1 = 0.0625, A2: 0.25^2*0.25 = 0.015625 -> 0.078125/48, x4
    #    2x2:    window (2,2) holds both (1.0 vs 1.0 -> 0); windows (1,1) w=0.25, (1,2) w=0.375,
    #            (2,1) w=0.375 hold A2 only: 0.25^2*0.25*(0.25+0.375+0.375)/36 = 0.015625/36, x2
    #    thirds: 1.0 vs 1.0 -> 0
    cases.append((_onehot((A, 0.75), (A2, 0.25)), _onehot((A, 1.0)), 4 * 0.078125 / 48 + 2 * 0.015625 / 36))
    # 3. identical distributions -> 0
    v = np.random.default_rng(1).random((1, 48))
    cases.append((v / v.sum(), v / v.sum(), 0.0))
    for y, yh, want in cases:
        got_np = float(telescope_loss_np(y, yh)[0])
        got_tf = float(telescope_loss(tf.constant(y, tf.float32), tf.constant(yh, tf.float32)).numpy()[0])
        assert math.isclose(got_np, want, rel_tol=1e-12, abs_tol=1e-15), (got_np, want)
        assert math.isclose(got_tf, want, rel_tol=1e-6, abs_tol=1e-9), (got_tf, want)
    # the loss is symmetric in y and yhat
    assert math.isclose(float(telescope_loss_np(cases[1][1], cases[1][0])[0]), cases[1][2], rel_tol=1e-12)
    # TF and numpy agree on random distributions (also through the 8x8 -> 48 decoder layout)
    rng = np.random.default_rng(2)
    y, yh = rng.random((64, 48)) ** 4, rng.random((64, 48)) ** 4
    y /= y.sum(1, keepdims=True)
    yh /= yh.sum(1, keepdims=True)
    assert np.allclose(telescope_loss(tf.constant(y, tf.float32), tf.constant(yh, tf.float32)).numpy(),
                       telescope_loss_np(y, yh), rtol=1e-5)


# ---- EMD ---------------------------------------------------------------------------------------

def test_emd_hand_cases():
    c = D.cell_centres()
    A, B, C = D.cell_index(0, 1, 1), D.cell_index(0, 1, 2), D.cell_index(2, 3, 3)
    d = lambda i, j: float(np.linalg.norm(c[i] - c[j]))  # noqa: E731
    # all mass from A to its neighbour B: exactly the cell pitch R/4
    assert math.isclose(M.emd(_onehot((A, 1.0)), _onehot((B, 1.0)))[0], PITCH, rel_tol=1e-12)
    # across the hexagon centre: cells (0,0,0) and (1,0,0) are R*sqrt(3)/8 apart
    assert math.isclose(M.emd(_onehot((0, 1.0)), _onehot((16, 1.0)))[0], R * math.sqrt(3) / 8, rel_tol=1e-12)
    # far corner to far corner
    assert math.isclose(M.emd(_onehot((A, 1.0)), _onehot((C, 1.0)))[0], d(A, C), rel_tol=1e-12)
    # identical distributions: 0 (also after scaling: inputs are normalised)
    v = np.random.default_rng(3).random((3, 48))
    assert np.allclose(M.emd(v, 7.0 * v), 0.0, atol=1e-12)
    # half of the mass moves A -> C: 0.5 d(A, C)
    assert math.isclose(M.emd(_onehot((A, 0.5), (B, 0.5)), _onehot((B, 0.5), (C, 0.5)))[0], 0.5 * d(A, C),
                        rel_tol=1e-9)
    # split target: 1 at C vs 1/2 at A + 1/2 at B -> 1/2 d(A,C) + 1/2 d(B,C)
    assert math.isclose(M.emd(_onehot((C, 1.0)), _onehot((A, 1.0), (B, 1.0)))[0], 0.5 * d(A, C) + 0.5 * d(B, C),
                        rel_tol=1e-9)
    # empty module -> NaN, ignored by the summary
    e = M.emd(np.vstack([_onehot((A, 1.0)), np.zeros((1, 48))]), np.vstack([_onehot((B, 1.0))] * 2))
    assert math.isclose(e[0], PITCH) and np.isnan(e[1])
    s = M.summary(np.array([1.0, 2.0, 3.0, np.nan]))
    assert s["n"] == 3 and s["median"] == 2.0
    with pytest.raises(ValueError):
        M.emd(-_onehot((A, 1.0)), _onehot((B, 1.0)))


# ---- figures -----------------------------------------------------------------------------------

def test_module_and_histogram_png(tmp_path, batch):
    from PIL import Image

    from qat.econ import plots

    p = tmp_path / "m.png"
    assert D.plot_modules(p, batch, [0, 1, 2], recon=batch.y) == p
    w, h = Image.open(p).size
    assert w > 300 and h > 300
    p2 = tmp_path / "h.png"
    plots.histogram(p2, {"a": np.arange(100) / 50.0}, np.linspace(0, 2, 11), "EMD (cm)", "t", ["note"])
    assert Image.open(p2).size == (704, 462)  # 6.4 x 4.2 in at 110 dpi


# ---- end to end: tiny training -> .h5 -> qrtl convert -> golden == QKeras --------------------------

@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    import qkeras  # noqa: F401

    from qat.econ import training as T

    cfg = T.TrainConfig(quantized=True, n_train=2048, n_val=512, epochs=2, patience=1, batch_size=256)
    r = T.train(cfg)
    d = tmp_path_factory.mktemp("econ_ckpt")
    paths = T.save_checkpoint(d, "econ", r.encoder, r.decoder, {"seconds": r.seconds})
    return d, paths, r


def _check_bit_exact(model_path, weights_path=None, n=10000, seed=5):
    from qat.importers.from_qkeras import convert_file, load_model

    net = convert_file(model_path, weights_path)
    assert [op.kind for op in net.ops] == ["conv2d", "requant", "reshape", "dense", "requant"]
    assert net.inputs[0].shape == (8, 8, 1) and net.inputs[0].type.bits == 10
    model = load_model(model_path, weights_path)
    batch = D.generate(n, seed=seed)
    res = M.bit_exact(model, batch.x, net)
    assert res["modules"] == n >= 10000
    assert res["values_equal"] == res["values"] == 16 * n, f"{res['values'] - res['values_equal']} values differ"
    # the latent is not trivially zero: the test compares real codes
    assert np.count_nonzero(res["latent_golden"]) > n
    return res


def test_tiny_training_end_to_end(tiny_checkpoint, capsys):
    from qat.econ import training as T

    d, paths, r = tiny_checkpoint
    assert r.epochs_run <= 2 and np.isfinite(r.history["loss"]).all()
    for k in ("encoder", "encoder_json", "encoder_weights", "decoder"):
        assert Path(paths[k]).is_file()
    res = _check_bit_exact(paths["encoder"])
    res_json = _check_bit_exact(paths["encoder_json"], paths["encoder_weights"])
    assert np.array_equal(res["latent_golden"], res_json["latent_golden"])
    # reload encoder + decoder and evaluate EMD through QKeras and through the golden model
    enc, dec = T.load_checkpoint(d, "econ")
    batch = D.generate(1000, seed=6)
    ev = M.evaluate(batch, quantized=(enc, dec))
    assert ev["bit_exact"]["modules_equal"] == 1000 and ev["golden_emd_equal"]
    assert 0 < ev["quantized"]["median"] < 10
    with capsys.disabled():
        print(f"\n  ECON-T tiny run: {r.seconds:.1f} s training, golden == QKeras on "
              f"{res['modules_equal']}/{res['modules']} modules; EMD {M.fmt(ev['quantized'])}")


def test_training_is_deterministic(tiny_checkpoint):
    from qat.econ import training as T

    _, _, r = tiny_checkpoint
    r2 = T.train(r.config)
    for a, b in zip(r.encoder.get_weights(), r2.encoder.get_weights()):
        assert np.array_equal(a, b)


def test_shipped_checkpoint_bit_exact(capsys):
    import qkeras  # noqa: F401

    res = _check_bit_exact(SHIPPED / "econ_encoder.h5")
    res2 = _check_bit_exact(SHIPPED / "econ_encoder.json", SHIPPED / "econ_encoder_weights.h5")
    assert np.array_equal(res["latent_golden"], res2["latent_golden"])
    with capsys.disabled():
        print(f"\n  shipped ECON-T encoder: golden == QKeras on {res['modules_equal']}/{res['modules']} modules")
