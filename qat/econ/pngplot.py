"""Small PNG figures: matplotlib when it is importable, otherwise a
dependency-free renderer (numpy + zlib) with a 3x5 bitmap font.

qrtl does not depend on matplotlib.  The built-in renderer draws the same
content (hexagonal modules as coloured rhombic cells; histograms as coloured
step outlines with axis ticks and short upper-case labels) so a figure is
always produced; ``QRTL_PLOT_BACKEND=builtin`` forces it.
"""
from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np


def backend() -> str:
    if os.environ.get("QRTL_PLOT_BACKEND", "") == "builtin":
        return "builtin"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "builtin"
    return "matplotlib"


# ---- raw PNG -----------------------------------------------------------------------------------

def write_png(path: str | Path, rgb: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 image as an 8-bit RGB PNG."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w, ch = rgb.shape
    if ch != 3:
        raise ValueError("expected (H, W, 3)")

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + rgb[r].tobytes() for r in range(h))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
    Path(path).write_bytes(png)


def read_png_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from a PNG header."""
    data = Path(path).read_bytes()[:24]
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG file")
    return struct.unpack(">II", data[16:24])


# viridis, 9 anchors
_VIRIDIS = np.array([[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
                     [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]], dtype=np.float64)
COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189)]


def colormap(v: np.ndarray) -> np.ndarray:
    v = np.clip(np.asarray(v, dtype=np.float64), 0, 1) * (len(_VIRIDIS) - 1)
    i = np.minimum(np.floor(v).astype(int), len(_VIRIDIS) - 2)
    f = (v - i)[..., None]
    return (_VIRIDIS[i] * (1 - f) + _VIRIDIS[i + 1] * f).astype(np.uint8)


# 3x5 glyphs, rows top to bottom, 3 bits each (MSB = left)
_FONT = {
    "0": [7, 5, 5, 5, 7], "1": [2, 6, 2, 2, 7], "2": [7, 1, 7, 4, 7], "3": [7, 1, 7, 1, 7],
    "4": [5, 5, 7, 1, 1], "5": [7, 4, 7, 1, 7], "6": [7, 4, 7, 5, 7], "7": [7, 1, 1, 2, 2], "8": [7, 5, 7, 5, 7],
    "9": [7, 5, 7, 1, 7], ".": [0, 0, 0, 0, 2], "-": [0, 0, 7, 0, 0], "+": [0, 2, 7, 2, 0], "=": [0, 7, 0, 7, 0],
    "%": [5, 1, 2, 4, 5], "[": [3, 2, 2, 2, 3], "]": [6, 2, 2, 2, 6], "'": [2, 2, 0, 0, 0], ":": [0, 2, 0, 2, 0], "/": [1, 1, 2, 4, 4], "(": [1, 2, 2, 2, 1], ")": [4, 2, 2, 2, 4],
    ",": [0, 0, 0, 2, 4], " ": [0, 0, 0, 0, 0], "_": [0, 0, 0, 0, 7], "<": [1, 2, 4, 2, 1], ">": [4, 2, 1, 2, 4],
    "A": [2, 5, 7, 5, 5], "B": [6, 5, 6, 5, 6], "C": [7, 4, 4, 4, 7], "D": [6, 5, 5, 5, 6], "E": [7, 4, 6, 4, 7],
    "F": [7, 4, 6, 4, 4], "G": [7, 4, 5, 5, 7], "H": [5, 5, 7, 5, 5], "I": [7, 2, 2, 2, 7], "J": [1, 1, 1, 5, 7],
    "K": [5, 5, 6, 5, 5], "L": [4, 4, 4, 4, 7], "M": [5, 7, 7, 5, 5], "N": [6, 5, 5, 5, 5], "O": [7, 5, 5, 5, 7],
    "P": [7, 5, 7, 4, 4], "Q": [2, 5, 5, 6, 3], "R": [6, 5, 6, 5, 5], "S": [7, 4, 7, 1, 7], "T": [7, 2, 2, 2, 2],
    "U": [5, 5, 5, 5, 7], "V": [5, 5, 5, 5, 2], "W": [5, 5, 7, 7, 5], "X": [5, 5, 2, 5, 5], "Y": [5, 5, 2, 2, 2],
    "Z": [7, 1, 2, 4, 7],
}


def draw_text(img: np.ndarray, x: int, y: int, text: str, colour=(0, 0, 0), scale: int = 2) -> None:
    """Upper-case text at (x, y) = top-left corner, in place; unknown characters are skipped."""
    h, w = img.shape[:2]
    for ch in text.upper():
        rows = _FONT.get(ch)
        if rows is not None:
            for r, bits in enumerate(rows):
                for c in range(3):
                    if bits & (4 >> c):
                        y0, x0 = y + r * scale, x + c * scale
                        if 0 <= y0 and y0 + scale <= h and 0 <= x0 and x0 + scale <= w:
                            img[y0:y0 + scale, x0:x0 + scale] = colour
        x += 4 * scale


def text_width(text: str, scale: int = 2) -> int:
    return 4 * scale * len(text)


def _line(img, x0, y0, x1, y1, colour) -> None:
    n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    xs = np.clip(np.round(np.linspace(x0, x1, n)).astype(int), 0, img.shape[1] - 1)
    ys = np.clip(np.round(np.linspace(y0, y1, n)).astype(int), 0, img.shape[0] - 1)
    img[ys, xs] = colour


def _cells_raster(polys: np.ndarray, size: int, margin_cm: float = 0.4) -> np.ndarray:
    """(size, size) cell index per pixel (-1 outside) for convex quads ``polys`` (48, 4, 2)."""
    ext = np.abs(polys).max() + margin_cm
    g = (np.arange(size) + 0.5) / size * 2 * ext - ext
    px, py = np.meshgrid(g, -g)
    pts = np.stack([px, py], axis=-1)[:, :, None, None, :]  # (S, S, 1, 1, 2)
    p0 = polys[None, None]
    p1 = np.roll(polys, -1, axis=1)[None, None]
    cross = (p1[..., 0] - p0[..., 0]) * (pts[..., 1] - p0[..., 1]) - (p1[..., 1] - p0[..., 1]) * (pts[..., 0] - p0[..., 0])
    inside = np.all(cross >= 0, axis=-1) | np.all(cross <= 0, axis=-1)  # (S, S, 48)
    return np.where(inside.any(-1), inside.argmax(-1), -1)


# ---- module maps -------------------------------------------------------------------------------

def hex_modules(path: str | Path, polys: np.ndarray, rows: list[np.ndarray], labels: list[str],
                row_names: list[str], title: str) -> str:
    """Grid of hexagonal modules: rows[r][m] is a (48,) distribution for panel (r, m)."""
    ncol = len(rows[0])
    vmax = max(float(np.max(r)) for r in rows) or 1.0
    if backend() == "matplotlib":
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.collections import PolyCollection

        fig, axes = plt.subplots(len(rows), ncol, figsize=(2.6 * ncol, 2.8 * len(rows)), squeeze=False)
        for r, vals in enumerate(rows):
            for m in range(ncol):
                ax = axes[r][m]
                pc = PolyCollection(polys, array=np.asarray(vals[m]), cmap="viridis", edgecolors="grey",
                                    linewidths=0.3)
                pc.set_clim(0, vmax)
                ax.add_collection(pc)
                ext = np.abs(polys).max() * 1.05
                ax.set_xlim(-ext, ext)
                ax.set_ylim(-ext, ext)
                ax.set_aspect("equal")
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title((labels[m] if r == 0 else row_names[r]), fontsize=7)
        fig.colorbar(pc, ax=axes, shrink=0.7, label="fraction of module sum")
        fig.suptitle(title, fontsize=9)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return "matplotlib"
    size, pad, top = 150, 10, 30
    cell = _cells_raster(polys, size)
    edge = np.zeros_like(cell, dtype=bool)
    edge[:-1] |= cell[:-1] != cell[1:]
    edge[:, :-1] |= cell[:, :-1] != cell[:, 1:]
    h = top + len(rows) * (size + pad + 14) + 40
    w = ncol * (size + pad) + pad
    img = np.full((h, w, 3), 255, dtype=np.uint8)
    draw_text(img, pad, 8, title)
    for r, vals in enumerate(rows):
        y0 = top + r * (size + pad + 14)
        for m in range(ncol):
            x0 = pad + m * (size + pad)
            v = np.asarray(vals[m], dtype=np.float64) / vmax
            panel = np.where((cell >= 0)[..., None], colormap(v[np.maximum(cell, 0)]), 255).astype(np.uint8)
            panel[edge & (cell >= 0)] = (128, 128, 128)
            img[y0 + 12:y0 + 12 + size, x0:x0 + size] = panel
            name = labels[m].split(",")[0] if r == 0 else row_names[r]
            draw_text(img, x0, y0, name[:18], scale=2)
    # colour bar
    yb = h - 30
    bar = colormap(np.linspace(0, 1, w - 2 * pad))
    img[yb:yb + 8, pad:w - pad] = bar[None]
    draw_text(img, pad, yb + 12, "0")
    lab = f"{vmax:.2f} OF MODULE SUM"
    draw_text(img, w - pad - text_width(lab), yb + 12, lab)
    write_png(path, img)
    return "builtin"


# ---- histograms --------------------------------------------------------------------------------

def histogram(path: str | Path, series: dict[str, np.ndarray], bins: np.ndarray, xlabel: str, title: str,
              notes: list[str] | None = None) -> str:
    """Step histograms of several series (same bins) with legend/notes."""
    bins = np.asarray(bins, dtype=np.float64)
    counts = {k: np.histogram(np.clip(v, bins[0], bins[-1]), bins)[0] for k, v in series.items()}
    if backend() == "matplotlib":
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for i, (k, v) in enumerate(series.items()):
            ax.hist(np.clip(v, bins[0], bins[-1]), bins, histtype="step", lw=1.6, label=k,
                    color=np.array(COLOURS[i % len(COLOURS)]) / 255)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("modules")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8, title="\n".join(notes or []), title_fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return "matplotlib"
    w, h = 640, 420
    left, right, top, bottom = 60, 20, 40, 50
    img = np.full((h, w, 3), 255, dtype=np.uint8)
    ymax = max(int(c.max()) for c in counts.values()) or 1
    pw, ph = w - left - right, h - top - bottom

    def X(v):
        return left + (v - bins[0]) / (bins[-1] - bins[0]) * pw

    def Y(c):
        return top + ph - c / (ymax * 1.05) * ph

    for i, c in enumerate(counts.values()):
        col = COLOURS[i % len(COLOURS)]
        prev = Y(0)
        for b in range(len(c)):
            x0, x1, yv = X(bins[b]), X(bins[b + 1]), Y(c[b])
            _line(img, x0, prev, x0, yv, col)
            _line(img, x0, yv, x1, yv, col)
            prev = yv
        _line(img, X(bins[-1]), prev, X(bins[-1]), Y(0), col)
    _line(img, left, top + ph, left + pw, top + ph, (0, 0, 0))
    _line(img, left, top, left, top + ph, (0, 0, 0))
    for t in np.linspace(bins[0], bins[-1], 6):
        _line(img, X(t), top + ph, X(t), top + ph + 4, (0, 0, 0))
        s = f"{t:g}"
        draw_text(img, int(X(t)) - text_width(s) // 2, top + ph + 8, s)
    for t in np.linspace(0, ymax, 5):
        s = f"{int(t)}"
        _line(img, left - 4, Y(t), left, Y(t), (0, 0, 0))
        draw_text(img, left - 6 - text_width(s), int(Y(t)) - 5, s)
    draw_text(img, left + pw // 2 - text_width(xlabel) // 2, h - 20, xlabel)
    draw_text(img, left, 10, title)
    y = top + 6
    for i, k in enumerate(counts):
        col = COLOURS[i % len(COLOURS)]
        img[y + 2:y + 8, w - right - 200:w - right - 186] = col
        draw_text(img, w - right - 180, y, k[:22])
        y += 14
    for n in notes or []:
        draw_text(img, w - right - 200, y, n[:25], colour=(80, 80, 80))
        y += 14
    write_png(path, img)
    return "builtin"
