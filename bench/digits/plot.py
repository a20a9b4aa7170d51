"""Accuracy-vs-resources scatter plot as a PNG, without matplotlib.

Built on qat.econ.pngplot's primitives (write_png, draw_text: a 3x5 upper-case bitmap font):
labelled points, axes with ticks, the Pareto staircase (fewer LUTs, higher accuracy).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from qat.econ.pngplot import COLOURS, draw_text, text_width, write_png


def _line(img: np.ndarray, x0: float, y0: float, x1: float, y1: float, colour, dash: int = 0) -> None:
    n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    xs = np.clip(np.round(np.linspace(x0, x1, n)).astype(int), 0, img.shape[1] - 1)
    ys = np.clip(np.round(np.linspace(y0, y1, n)).astype(int), 0, img.shape[0] - 1)
    if dash:
        keep = (np.arange(n) // dash) % 2 == 0
        xs, ys = xs[keep], ys[keep]
    img[ys, xs] = colour


def _marker(img: np.ndarray, x: float, y: float, colour, filled: bool, r: int = 5) -> None:
    xi, yi = int(round(x)), int(round(y))
    h, w = img.shape[:2]
    y0, y1, x0, x1 = max(yi - r, 0), min(yi + r + 1, h), max(xi - r, 0), min(xi + r + 1, w)
    if filled:
        img[y0:y1, x0:x1] = colour
    else:
        img[y0:y1, x0:x0 + 2] = colour
        img[y0:y1, x1 - 2:x1] = colour
        img[y0:y0 + 2, x0:x1] = colour
        img[y1 - 2:y1, x0:x1] = colour


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    span = hi - lo
    raw = span / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    t = math.ceil(lo / step) * step
    out = []
    while t <= hi + 1e-9 * span:
        out.append(round(t, 10))
        t += step
    return out


def pareto(points: list[tuple[str, float, float]]) -> list[str]:
    """Labels of the points no other point beats (fewer or equal x and higher or equal y, one strictly)."""
    front = []
    for lab, x, y in points:
        if not any((x2 <= x and y2 >= y) and (x2 < x or y2 > y) for _, x2, y2 in points):
            front.append(lab)
    return front


def scatter(path: str | Path, points: list[tuple[str, float, float]], xlabel: str, ylabel: str, title: str,
            notes: list[str] | None = None, width: int = 760, height: int = 500) -> list[str]:
    """Scatter of (label, x, y) with the Pareto front (min x, max y) drawn as a dashed staircase and
    front points filled; returns the front's labels."""
    left, right, top, bottom = 70, 30, 50, 60
    img = np.full((height, width, 3), 255, dtype=np.uint8)
    xs = np.array([p[1] for p in points], dtype=np.float64)
    ys = np.array([p[2] for p in points], dtype=np.float64)
    xlo, xhi = 0.0, float(xs.max()) * 1.15 if len(xs) else 1.0
    ypad = max(float(ys.max() - ys.min()) * 0.25, 1.0) if len(ys) else 1.0
    ylo, yhi = float(ys.min()) - ypad, float(ys.max()) + ypad
    pw, ph = width - left - right, height - top - bottom

    def X(v: float) -> float:
        return left + (v - xlo) / (xhi - xlo) * pw

    def Y(v: float) -> float:
        return top + ph - (v - ylo) / (yhi - ylo) * ph

    black, grey = (0, 0, 0), (200, 200, 200)
    for t in _nice_ticks(xlo, xhi, 6):
        _line(img, X(t), top, X(t), top + ph, grey, dash=3)
        _line(img, X(t), top + ph, X(t), top + ph + 4, black)
        s = f"{t:g}"
        draw_text(img, int(X(t)) - text_width(s) // 2, top + ph + 8, s)
    for t in _nice_ticks(ylo, yhi, 5):
        _line(img, left, Y(t), left + pw, Y(t), grey, dash=3)
        _line(img, left - 4, Y(t), left, Y(t), black)
        s = f"{t:g}"
        draw_text(img, left - 8 - text_width(s), int(Y(t)) - 5, s)
    _line(img, left, top + ph, left + pw, top + ph, black)
    _line(img, left, top, left, top + ph, black)
    draw_text(img, left + pw // 2 - text_width(xlabel) // 2, height - 24, xlabel)
    draw_text(img, 8, top - 18, ylabel)
    draw_text(img, left, 10, title)

    front = pareto(points)
    fpts = sorted((x, y) for lab, x, y in points if lab in front)
    for (x0, y0), (x1, y1) in zip(fpts, fpts[1:]):  # staircase: right, then up
        _line(img, X(x0), Y(y0), X(x1), Y(y0), (120, 120, 120), dash=4)
        _line(img, X(x1), Y(y0), X(x1), Y(y1), (120, 120, 120), dash=4)
    placed: list[tuple[int, int, int, int]] = []  # boxes (x, y, w, h) labels must not overlap
    for lab, x, y in points:
        placed.append((int(X(x)) - 6, int(Y(y)) - 6, 13, 13))
    for i, (lab, x, y) in enumerate(points):
        col = COLOURS[i % len(COLOURS)]
        _marker(img, X(x), Y(y), col, lab in front)
        tw, px, py = text_width(lab), int(X(x)), int(Y(y))
        spots = [(px + 10, py - 5), (px - 10 - tw, py - 5), (px - tw // 2, py - 22), (px - tw // 2, py + 10)]
        spots += [(px - tw // 2, py + 10 + 13 * k) for k in range(1, 6)]
        for tx, ty in spots:  # first spot inside the plot that overlaps no marker and no earlier label
            inside = left < tx and tx + tw < width - 4 and top < ty and ty + 12 < top + ph
            if inside and not any(tx < a + c and a < tx + tw and ty < b + d and b < ty + 12 for a, b, c, d in placed):
                break
        placed.append((tx, ty, tw, 12))
        draw_text(img, tx, ty, lab, colour=col)
    y = top + ph - 14 * len(notes or []) - 4
    for n in notes or []:
        draw_text(img, left + pw - text_width(n[:60]) - 6, y, n[:60], colour=(90, 90, 90))
        y += 14
    write_png(path, img)
    return front
