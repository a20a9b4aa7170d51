"""Accuracy-vs-resources scatter plot (matplotlib): labelled points and the Pareto staircase
(fewer LUTs, higher accuracy), front points filled."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def pareto(points: list[tuple[str, float, float]]) -> list[str]:
    """Labels of the points no other point beats (fewer or equal x and higher or equal y, one strictly)."""
    front = []
    for lab, x, y in points:
        if not any((x2 <= x and y2 >= y) and (x2 < x or y2 > y) for _, x2, y2 in points):
            front.append(lab)
    return front


def scatter(path: str | Path, points: list[tuple[str, float, float]], xlabel: str, ylabel: str, title: str,
            notes: list[str] | None = None) -> list[str]:
    """Scatter of (label, x, y) with the Pareto front (min x, max y) as a dashed staircase and filled
    front points; returns the front's labels."""
    front = pareto(points)
    fig, ax = plt.subplots(figsize=(7.6, 5.0))
    for i, (lab, x, y) in enumerate(points):
        colour = f"C{i % 10}"
        ax.scatter([x], [y], s=60, color=colour, facecolors=colour if lab in front else "none", zorder=3)
        below = sum(1 for _, x2, y2 in points[:i] if abs(y2 - y) < 1e-9 and abs(x2 - x) < 0.3 * max(x, x2)) % 2
        ax.annotate(lab, (x, y), textcoords="offset points", xytext=(7, -12 if below else 5), fontsize=8,
                    color=colour)
    fpts = sorted((x, y) for lab, x, y in points if lab in front)
    if len(fpts) > 1:
        xs, ys = [fpts[0][0]], [fpts[0][1]]
        for (_, y0), (x1, y1) in zip(fpts, fpts[1:]):  # staircase: right, then up
            xs += [x1, x1]
            ys += [y0, y1]
        ax.plot(xs, ys, ls="--", color="grey", lw=1)
    ax.set_xlim(0, max(x for _, x, _ in points) * 1.18)
    ys = [y for _, _, y in points]
    pad = max(max(ys) - min(ys), 1.0) * 0.12
    ax.set_ylim(min(ys) - pad, max(ys) + pad)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(ls=":", color="lightgrey")
    if notes:
        ax.text(0.99, 0.02, "\n".join(notes), transform=ax.transAxes, ha="right", va="bottom", fontsize=7,
                color="dimgrey")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return front
