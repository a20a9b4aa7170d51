"""Synthetic HGCAL-like sensor modules for the ECON-T style autoencoder.

Real HGCAL data is not available offline, so this module generates modules
deterministically from a seed: electromagnetic and hadronic showers with
realistic lateral profiles, pile-up, electronic noise, digitisation,
zero suppression, the ECON-T bit-shift normalisation by the module sum and
8-bit input rounding.  Same seed and parameters -> identical arrays.

Geometry (all lengths in cm)
----------------------------
One 8-inch low-density hexagonal sensor, flat-to-flat ``F`` = 16.6 cm, centred
at the origin with a corner pointing up; corner distance (= side) R = F/sqrt(3)
= 9.584 cm.  The unit vectors to three alternate corners are

    e0 = (0, 1)  (90 deg),   e1 = (-sqrt(3)/2, -1/2)  (210 deg),   e2 = (sqrt(3)/2, -1/2)  (330 deg).

The hexagon is the union of three 120-degree rhombi ("thirds", as in the
ECON-T 48-cell layout): third t is spanned by a_t = R e_t and b_t = R e_{t+1 mod 3}
(third 0 upper left, third 1 bottom, third 2 upper right).  Each third is cut
into a 4x4 grid of small rhombi, the 16 trigger cells of that third; trigger
cell (t, i, j), i, j in 0..3, has index c = 16 t + 4 i + j and centre

    centre(t, i, j) = (i + 1/2)/4 * a_t + (j + 1/2)/4 * b_t.

Cells (t, 0, 0) touch the hexagon centre; (t, 3, 3) is the outer corner of
third t.  Neighbouring cells are 2.396 cm apart (side R/4), each cell is a
rhombus of 4.97 cm^2 (4 low-density sensor cells of ~1.2 cm^2).  Across the
boundary between third t-1 and third t (the line along e_t) cell (t-1, 0, k)
faces cell (t, k, 0).  :func:`cell_centres` returns the (48, 2) array.

Input layouts
-------------
8x8x1 (the published ECON-T autoencoder input; 48 cells + 16 zeros): third 0
fills the top-left 4x4 quadrant, third 1 the top-right, third 2 the
bottom-left, and the bottom-right quadrant is zero padding:

    third 0: (0, i, j) -> row 3 - j, col 3 - i
    third 1: (1, i, j) -> row 3 - i, col 4 + j
    third 2: (2, i, j) -> row 4 + i, col 3 - j

so the three cells at the hexagon centre meet at rows/cols 3-4 and two of the
three boundaries between thirds are image-adjacent (0|1 along the column
3|4 edge, 2|0 along the row 3|4 edge; boundary 1|2 faces the padding, as in
the published arrangement).  ``CELL_TO_8X8[c]`` is the flat (row*8 + col)
position of cell c.  4x4x3: cell (t, i, j) -> [i, j, t].

Physics model (parameters in :class:`EconDataParams`)
-----------------------------------------------------
Energies are in MIPs (transverse-MIP-like units).  Each module gets one
"kind": an electromagnetic shower, a hadronic shower, or pile-up only.  The
shower axis is uniform over the hexagon enlarged by ``axis_margin_cm`` (so
showers near the edge are only partly contained); the energy is
log-uniform in [e_min, e_max].  Deposits are sampled as energy "spots"
(``spot_energy`` each, at most ``max_spots``), which reproduces the stochastic
fluctuations of a sampling calorimeter, and binned into trigger cells
(spots outside the hexagon are lost, leakage to the neighbouring module).

* EM: Grindhammer-Peters two-component radial profile,
  f(r) dr = [p 2 r Rc^2/(r^2+Rc^2)^2 + (1-p) 2 r Rt^2/(r^2+Rt^2)^2] dr, with
  core radius Rc and tail radius Rt in units of the Moliere radius and core
  fraction p drawn per shower (they vary with depth, i.e. with the layer).
  Sampling: r = R sqrt(u/(1-u)).
* Hadronic: 1 + Poisson(had_subclusters - 1) EM-like sub-clusters (pi0
  sub-showers, wider radii) displaced from the axis by a Gaussian of
  ``had_spread_cm``, energies split by a flat Dirichlet, plus a broad halo
  with an exponential lateral profile (per unit area, radius r ~ Gamma(2,
  had_halo_cm)) carrying a fraction in [had_halo_min, had_halo_max]; spot
  energies fluctuate (Gamma, shape ``had_spot_shape``).
* Pile-up in every module: Poisson(pu_mean) low-energy deposits (energy
  Exponential(pu_energy_mean), narrow profile), axes uniform as above.
* Electronics: Gaussian noise ``noise_mip`` per trigger cell, digitised to
  integer charges q = floor(E / lsb_mip) (negative -> 0, saturating at
  2^22 - 1), zero suppression q < zs_threshold_lsb -> 0.  Modules whose
  charges are all zero are not emitted (the stream is redrawn).

Normalisation and 8-bit inputs (ECON-T style)
---------------------------------------------
S = sum of the 48 charges; k = the exponent of the power of two at or above
S (2^(k-1) < S <= 2^k, k = (S-1).bit_length()).  Each charge is divided by
2^k with a bit shift and rounded to 8 bits:

    u = q << (8 - k)                            if k <= 8 (exact)
    u = (q + 2^(k-9)) >> (k - 8)                otherwise (round half up)
    u = min(u, 255)                             (only a single cell holding
                                                 >= 255.5/256 of 2^k saturates)

so u is q / 2^k in units of 2^-8, and sum(q) / 2^k is in (1/2, 1].  The
network input is x = u * 2^-6 on the 8x8x1 layout: the 8-bit code u read as
a fixed-point value with 6 fractional bits, range [0, 255/64], which the
published input quantizer ``quantized_bits(10, 3, alpha=1)`` (step 2^-6,
range [-8, 8)) represents exactly, so the quantizer is lossless on this data.
(The 8-bit code is the hardware word; the converted network's input port is
that quantizer's 10-bit signed type.)  The reconstruction target is the
normalised 48-cell distribution y = u / sum(u).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

N_CELLS = 48
N_THIRDS = 3
GRID = 4  # trigger cells per rhombus side
INPUT_BITS = 8
INPUT_FRAC_BITS = 6  # x = u * 2^-6 (quantized_bits(10, 3): step 2^-6)
CHARGE_BITS = 22
KIND_NAMES = ("pileup", "em", "hadronic")
CHUNK = 4096  # modules per independently seeded chunk (prefix property)


@dataclass(frozen=True)
class EconDataParams:
    """Parameters of the synthetic module generator (units: cm, MIPs)."""

    # sensor geometry
    flat_to_flat_cm: float = 16.6  # 8-inch hexagonal sensor
    moliere_radius_cm: float = 2.6  # CE-E (W/Pb/Cu absorber) scale
    axis_margin_cm: float = 3.0  # shower axes up to this far outside the hexagon
    # composition: probabilities of (pile-up only, EM, hadronic) modules
    p_kind: tuple[float, float, float] = (0.2, 0.45, 0.35)
    e_min: float = 5.0  # shower energy, log-uniform (MIPs)
    e_max: float = 500.0
    spot_energy: float = 0.5  # MIPs per sampled spot (sampling fluctuations)
    max_spots: int = 1500
    # EM (Grindhammer-Peters): radii in Moliere radii, core fraction
    em_core_radius: tuple[float, float] = (0.10, 0.30)
    em_tail_radius: tuple[float, float] = (0.60, 1.20)
    em_core_fraction: tuple[float, float] = (0.55, 0.90)
    # hadronic
    had_subclusters: float = 2.5  # mean number of sub-clusters (>= 1)
    had_spread_cm: float = 2.5  # Gaussian displacement of sub-clusters (per coordinate)
    had_radius_scale: tuple[float, float] = (1.3, 2.5)  # sub-cluster radii vs EM
    had_halo_cm: float = 3.0  # exponential halo scale
    had_halo_min: float = 0.15
    had_halo_max: float = 0.50
    had_spot_shape: float = 0.6  # Gamma shape of hadronic spot energies (fluctuations)
    # pile-up
    pu_mean: float = 3.0  # Poisson mean number of deposits per module
    pu_energy_mean: float = 2.5  # MIPs, exponential
    pu_radius_cm: float = 0.8  # Grindhammer-like single radius
    pu_spots: int = 6
    # electronics
    noise_mip: float = 0.35  # Gaussian noise per trigger cell
    lsb_mip: float = 0.25  # charge LSB
    zs_threshold_lsb: int = 4  # zero suppression: q < 4 LSB (1 MIP) -> 0

    @property
    def side_cm(self) -> float:
        return self.flat_to_flat_cm / math.sqrt(3.0)

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_PARAMS = EconDataParams()

# ---- geometry ----------------------------------------------------------------------------------

_ANGLES = np.deg2rad([90.0, 210.0, 330.0])
_E = np.stack([np.cos(_ANGLES), np.sin(_ANGLES)], axis=1)  # (3, 2) unit vectors e_t


def _basis(params: EconDataParams = DEFAULT_PARAMS) -> tuple[np.ndarray, np.ndarray]:
    """(3, 2) vectors a_t and b_t spanning each third (cm)."""
    r = params.side_cm
    return r * _E, r * _E[[1, 2, 0]]


def cell_tij(c) -> tuple[int, int, int]:
    """(third, i, j) of cell index c = 16 t + 4 i + j."""
    c = int(c)
    return c // 16, (c % 16) // 4, c % 4


def cell_index(t: int, i: int, j: int) -> int:
    return 16 * t + 4 * i + j


def cell_centres(params: EconDataParams = DEFAULT_PARAMS) -> np.ndarray:
    """(48, 2) trigger-cell centres in cm (x, y), index c = 16 t + 4 i + j."""
    a, b = _basis(params)
    out = np.zeros((N_CELLS, 2))
    for c in range(N_CELLS):
        t, i, j = cell_tij(c)
        out[c] = (i + 0.5) / GRID * a[t] + (j + 0.5) / GRID * b[t]
    return out


def cell_polygons(params: EconDataParams = DEFAULT_PARAMS) -> np.ndarray:
    """(48, 4, 2) corners of each rhombic trigger cell (for plots)."""
    a, b = _basis(params)
    out = np.zeros((N_CELLS, 4, 2))
    for c in range(N_CELLS):
        t, i, j = cell_tij(c)
        for k, (di, dj) in enumerate(((0, 0), (1, 0), (1, 1), (0, 1))):
            out[c, k] = (i + di) / GRID * a[t] + (j + dj) / GRID * b[t]
    return out


def point_to_cell(xy: np.ndarray, params: EconDataParams = DEFAULT_PARAMS) -> np.ndarray:
    """Cell index of each point (..., 2) in cm; -1 outside the hexagon."""
    xy = np.asarray(xy, dtype=np.float64)
    a, b = _basis(params)
    out = np.full(xy.shape[:-1], -1, dtype=np.int64)
    for t in range(N_THIRDS):
        inv = np.linalg.inv(np.stack([a[t], b[t]], axis=1))  # columns a_t, b_t
        ab = xy @ inv.T  # (..., 2): alpha, beta
        al, be = ab[..., 0], ab[..., 1]
        inside = (al >= 0) & (al < 1) & (be >= 0) & (be < 1) & (out < 0)
        i = np.clip(np.floor(al * GRID), 0, GRID - 1).astype(np.int64)
        j = np.clip(np.floor(be * GRID), 0, GRID - 1).astype(np.int64)
        out = np.where(inside, 16 * t + 4 * i + j, out)
    return out


def _layout_8x8() -> np.ndarray:
    pos = np.zeros(N_CELLS, dtype=np.int64)
    for c in range(N_CELLS):
        t, i, j = cell_tij(c)
        if t == 0:
            r, col = 3 - j, 3 - i
        elif t == 1:
            r, col = 3 - i, 4 + j
        else:
            r, col = 4 + i, 3 - j
        pos[c] = 8 * r + col
    return pos


CELL_TO_8X8 = _layout_8x8()  # flat index row*8 + col of each cell
PAD_8X8 = np.setdiff1d(np.arange(64), CELL_TO_8X8)  # the 16 zero-padding positions


def to_8x8(cells: np.ndarray) -> np.ndarray:
    """(N, 48) -> (N, 8, 8, 1), padding zeros."""
    cells = np.asarray(cells)
    img = np.zeros(cells.shape[:-1] + (64,), dtype=cells.dtype)
    img[..., CELL_TO_8X8] = cells
    return img.reshape(cells.shape[:-1] + (8, 8, 1))


def from_8x8(img: np.ndarray) -> np.ndarray:
    """(N, 8, 8[, 1]) -> (N, 48)."""
    img = np.asarray(img)
    n = img.shape[0]
    return img.reshape(n, 64)[:, CELL_TO_8X8]


def to_4x4x3(cells: np.ndarray) -> np.ndarray:
    """(N, 48) -> (N, 4, 4, 3): cell (t, i, j) at [i, j, t]."""
    cells = np.asarray(cells)
    return cells.reshape(cells.shape[:-1] + (N_THIRDS, GRID, GRID)).transpose(0, 2, 3, 1)


def from_4x4x3(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    return arr.transpose(0, 3, 1, 2).reshape(arr.shape[0], N_CELLS)


# ---- telescope groupings (2x2 super-cells, thirds) -----------------------------------------------

def super_cells() -> np.ndarray:
    """(36, 4) cell indices of the 2x2 super-cells.

    27 inside the thirds (every 2x2 window of each 4x4 grid, overlapping) and
    9 across the three boundaries between thirds (two consecutive cells on
    each side of the boundary line: (t-1, 0, k), (t-1, 0, k+1), (t, k, 0),
    (t, k+1, 0), k = 0..2).
    """
    out = []
    for t in range(N_THIRDS):
        for i in range(GRID - 1):
            for j in range(GRID - 1):
                out.append([cell_index(t, i, j), cell_index(t, i, j + 1), cell_index(t, i + 1, j),
                            cell_index(t, i + 1, j + 1)])
    for t in range(N_THIRDS):
        p = (t - 1) % N_THIRDS
        for k in range(GRID - 1):
            out.append([cell_index(p, 0, k), cell_index(p, 0, k + 1), cell_index(t, k, 0), cell_index(t, k + 1, 0)])
    return np.asarray(out, dtype=np.int64)


def super_cell_weights() -> np.ndarray:
    """(36,) weight of each super-cell: 1/4 * sum over its cells of 1/n_c, n_c =
    number of super-cells containing cell c, so every cell carries the same
    total weight (1/4) whether it sits in the middle or on an edge."""
    sc = super_cells()
    n_c = np.bincount(sc.ravel(), minlength=N_CELLS).astype(np.float64)
    return 0.25 * (1.0 / n_c)[sc].sum(axis=1)


def third_of_cell() -> np.ndarray:
    return np.arange(N_CELLS) // 16


# ---- generation --------------------------------------------------------------------------------


@dataclass
class ModuleBatch:
    """Generated modules (N of them).

    energy: (N, 48) float64 deposited energy per cell before noise (MIPs)
    charge: (N, 48) int64 digitised, zero-suppressed charges q (LSB units)
    shift:  (N,) int64 k with 2^(k-1) < sum(q) <= 2^k
    codes:  (N, 48) int64 8-bit normalised codes u in [0, 255]
    kind:   (N,) int64 index into KIND_NAMES
    """

    energy: np.ndarray
    charge: np.ndarray
    shift: np.ndarray
    codes: np.ndarray
    kind: np.ndarray
    params: EconDataParams = field(default=DEFAULT_PARAMS)

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def x(self) -> np.ndarray:
        """Network input (N, 8, 8, 1) float32: u * 2^-6 (exact)."""
        return to_8x8(np.ldexp(self.codes.astype(np.float32), -INPUT_FRAC_BITS))

    @property
    def y(self) -> np.ndarray:
        """Target (N, 48) float64: u / sum(u)."""
        u = self.codes.astype(np.float64)
        return u / u.sum(axis=1, keepdims=True)

    def x_4x4x3(self) -> np.ndarray:
        return to_4x4x3(np.ldexp(self.codes.astype(np.float32), -INPUT_FRAC_BITS))


def normalise(charge: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ECON-T normalisation of integer charges (N, 48) -> (shift k, 8-bit codes u)."""
    q = np.asarray(charge, dtype=np.int64)
    s = q.sum(axis=1)
    if np.any(s <= 0):
        raise ValueError("module with zero charge sum cannot be normalised")
    k = np.array([int(v - 1).bit_length() for v in s], dtype=np.int64)
    k2 = k[:, None]
    up = np.left_shift(q, np.maximum(INPUT_BITS - k2, 0))
    down_shift = np.maximum(k2 - INPUT_BITS, 0)
    half = np.where(down_shift > 0, np.left_shift(1, np.maximum(down_shift - 1, 0)), 0)
    down = np.right_shift(q + half, down_shift)
    u = np.where(k2 <= INPUT_BITS, up, down)
    return k, np.minimum(u, (1 << INPUT_BITS) - 1)


def _uniform_in_hexagon(rng: np.random.Generator, n: int, params: EconDataParams, scale: float) -> np.ndarray:
    """n points uniform over the hexagon scaled by ``scale`` (affine map of a random third)."""
    a, b = _basis(params)
    t = rng.integers(0, N_THIRDS, size=n)
    al, be = rng.random(n), rng.random(n)
    return scale * (al[:, None] * a[t] + be[:, None] * b[t])


def _gp_radius(rng: np.random.Generator, radius: np.ndarray) -> np.ndarray:
    """Radii from f(r) = 2 r R^2/(r^2+R^2)^2 (CDF r^2/(r^2+R^2))."""
    u = np.minimum(rng.random(radius.shape), 1.0 - 1e-9)
    return radius * np.sqrt(u / (1.0 - u))


def _chunk(rng: np.random.Generator, n: int, p: EconDataParams) -> tuple[np.ndarray, np.ndarray]:
    """One chunk of n candidate modules: (energy (n, 48), kind (n,))."""
    scale = (p.side_cm + p.axis_margin_cm) / p.side_cm
    kind = rng.choice(3, size=n, p=np.asarray(p.p_kind) / np.sum(p.p_kind))
    axis = _uniform_in_hexagon(rng, n, p, scale)
    e_tot = np.exp(rng.uniform(math.log(p.e_min), math.log(p.e_max), size=n))

    # components, one row each: module, centre x, centre y, energy, profile, r1, r2, core fraction,
    # spot Gamma shape (0: equal spot energies), fixed spot count (0: energy / spot_energy)
    # profile 0 = Grindhammer-Peters two-component (r1 core, r2 tail radius), 1 = exponential halo (r1)
    comps: list[np.ndarray] = []

    em = np.flatnonzero(kind == 1)
    rm = p.moliere_radius_cm
    if em.size:
        rc = rng.uniform(*p.em_core_radius, size=em.size) * rm
        rt = rng.uniform(*p.em_tail_radius, size=em.size) * rm
        pc = rng.uniform(*p.em_core_fraction, size=em.size)
        comps.append(np.stack([em, axis[em, 0], axis[em, 1], e_tot[em], np.zeros(em.size), rc, rt, pc,
                               np.zeros(em.size), np.zeros(em.size)], axis=1))

    had = np.flatnonzero(kind == 2)
    if had.size:
        halo_f = rng.uniform(p.had_halo_min, p.had_halo_max, size=had.size)
        nsub = 1 + rng.poisson(max(p.had_subclusters - 1.0, 0.0), size=had.size)
        sub_mod = np.repeat(had, nsub)
        owner = np.repeat(np.arange(had.size), nsub)
        # flat Dirichlet split of the non-halo energy: normalised exponentials
        g = rng.exponential(1.0, size=sub_mod.size)
        gsum = np.bincount(owner, weights=g, minlength=had.size)
        frac = g / gsum[owner]
        e_sub = e_tot[sub_mod] * (1.0 - halo_f[owner]) * frac
        centre = axis[sub_mod] + rng.normal(0.0, p.had_spread_cm, size=(sub_mod.size, 2))
        rs = rng.uniform(*p.had_radius_scale, size=sub_mod.size)
        rc = rng.uniform(*p.em_core_radius, size=sub_mod.size) * rm * rs
        rt = rng.uniform(*p.em_tail_radius, size=sub_mod.size) * rm * rs
        pc = rng.uniform(*p.em_core_fraction, size=sub_mod.size)
        comps.append(np.stack([sub_mod, centre[:, 0], centre[:, 1], e_sub, np.zeros(sub_mod.size), rc, rt, pc,
                               np.full(sub_mod.size, p.had_spot_shape), np.zeros(sub_mod.size)], axis=1))
        comps.append(np.stack([had, axis[had, 0], axis[had, 1], e_tot[had] * halo_f, np.ones(had.size),
                               np.full(had.size, p.had_halo_cm), np.zeros(had.size), np.zeros(had.size),
                               np.full(had.size, p.had_spot_shape), np.zeros(had.size)], axis=1))

    npu = rng.poisson(p.pu_mean, size=n)
    pu_mod = np.repeat(np.arange(n), npu)
    if pu_mod.size:
        pu_axis = _uniform_in_hexagon(rng, pu_mod.size, p, scale)
        e_pu = rng.exponential(p.pu_energy_mean, size=pu_mod.size)
        comps.append(np.stack([pu_mod, pu_axis[:, 0], pu_axis[:, 1], e_pu, np.zeros(pu_mod.size),
                               np.full(pu_mod.size, p.pu_radius_cm), np.full(pu_mod.size, p.pu_radius_cm),
                               np.ones(pu_mod.size), np.zeros(pu_mod.size), np.full(pu_mod.size, p.pu_spots)],
                              axis=1))

    comp = np.concatenate(comps, axis=0) if comps else np.zeros((0, 10))
    energy = np.zeros(n * N_CELLS)
    if len(comp):
        mod = comp[:, 0].astype(np.int64)
        e = comp[:, 3]
        nsp = np.where(comp[:, 9] > 0, comp[:, 9], np.clip(np.round(e / p.spot_energy), 1, p.max_spots))
        nsp = nsp.astype(np.int64)
        idx = np.repeat(np.arange(len(comp)), nsp)
        c = comp[idx]
        # spot energies: equal shares (EM, pile-up) or Gamma-fluctuating shares (hadronic)
        shape = c[:, 8]
        w = np.ones(idx.size)
        fl = shape > 0
        if fl.any():
            w[fl] = rng.gamma(shape[fl], 1.0)
        wsum = np.bincount(idx, weights=w, minlength=len(comp))
        espot = e[idx] * w / np.where(wsum[idx] > 0, wsum[idx], 1.0)
        # radii
        halo = c[:, 4] == 1.0
        core = rng.random(idx.size) < c[:, 7]
        radius = np.where(core, c[:, 5], c[:, 6])
        r = np.where(halo, rng.gamma(2.0, 1.0, size=idx.size) * c[:, 5], _gp_radius(rng, np.where(halo, 1.0, radius)))
        phi = rng.uniform(0.0, 2.0 * math.pi, size=idx.size)
        xy = c[:, 1:3] + r[:, None] * np.stack([np.cos(phi), np.sin(phi)], axis=1)
        cell = point_to_cell(xy, p)
        ok = cell >= 0
        np.add.at(energy, mod[idx[ok]] * N_CELLS + cell[ok], espot[ok])
    return energy.reshape(n, N_CELLS), kind.astype(np.int64)


def digitise(energy: np.ndarray, rng: np.random.Generator, p: EconDataParams) -> np.ndarray:
    """Noise, digitisation (floor, saturating at 22 bits) and zero suppression."""
    noisy = energy + rng.normal(0.0, p.noise_mip, size=energy.shape)
    q = np.floor(np.maximum(noisy, 0.0) / p.lsb_mip)
    q = np.minimum(q, (1 << CHARGE_BITS) - 1).astype(np.int64)
    return np.where(q >= p.zs_threshold_lsb, q, 0)


def generate(n: int, seed: int = 0, params: EconDataParams = DEFAULT_PARAMS) -> ModuleBatch:
    """n modules, deterministic in (seed, params).

    Modules are drawn in chunks of CHUNK candidates, chunk m from
    ``np.random.default_rng([seed, m])``; empty modules are dropped.  So the
    first n modules of a larger request are the same modules (prefix property).
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    energies, charges, kinds = [], [], []
    got, m = 0, 0
    while got < n:
        rng = np.random.default_rng([int(seed), m])
        e, k = _chunk(rng, CHUNK, params)
        q = digitise(e, rng, params)
        keep = q.sum(axis=1) > 0
        energies.append(e[keep])
        charges.append(q[keep])
        kinds.append(k[keep])
        got += int(keep.sum())
        m += 1
        if m > 1000 + 10 * (n // CHUNK):
            raise RuntimeError("generator produced too many empty modules; check the parameters")
    if n == 0:
        e = np.zeros((0, N_CELLS))
        q = np.zeros((0, N_CELLS), dtype=np.int64)
        return ModuleBatch(e, q, np.zeros(0, np.int64), q.copy(), np.zeros(0, np.int64), params)
    energy = np.concatenate(energies)[:n]
    charge = np.concatenate(charges)[:n]
    kind = np.concatenate(kinds)[:n]
    shift, codes = normalise(charge)
    return ModuleBatch(energy, charge, shift, codes, kind, params)


# ---- plots -------------------------------------------------------------------------------------

def plot_modules(path: str | Path, batch: ModuleBatch, indices=None, recon: np.ndarray | None = None,
                 title: str | None = None) -> Path:
    """PNG of example modules on the hexagon (normalised codes u / sum u); with
    ``recon`` (N, 48) a second row shows the reconstructions.  Returns the path."""
    from qat.econ import plots

    if indices is None:
        indices = list(range(min(6, len(batch))))
    y = batch.y[indices]
    rows = [y] if recon is None else [y, np.asarray(recon)[indices]]
    labels = [f"{KIND_NAMES[batch.kind[i]]}, sum q={int(batch.charge[i].sum())}, k={int(batch.shift[i])}"
              for i in indices]
    return plots.hex_modules(path, cell_polygons(batch.params), rows, labels,
                               row_names=["input" if recon is not None else "module", "reconstruction"],
                               title=title or "synthetic HGCAL-like modules (u / sum u)")
