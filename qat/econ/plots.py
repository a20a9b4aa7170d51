"""PNG figures of the ECON-T study (matplotlib, Agg backend): example modules on the
hexagonal cell geometry and EMD histograms."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402


def hex_modules(path: str | Path, polys: np.ndarray, rows: list[np.ndarray], labels: list[str],
                row_names: list[str], title: str) -> Path:
    """Grid of hexagonal modules: rows[r][m] is a (48,) distribution drawn on the cell polygons
    ``polys`` (48, 4, 2) in cm, for panel (r, m)."""
    ncol = len(rows[0])
    vmax = max(float(np.max(r)) for r in rows) or 1.0
    fig, axes = plt.subplots(len(rows), ncol, figsize=(2.6 * ncol, 2.8 * len(rows)), squeeze=False)
    ext = np.abs(polys).max() * 1.05
    for r, vals in enumerate(rows):
        for m in range(ncol):
            ax = axes[r][m]
            pc = PolyCollection(polys, array=np.asarray(vals[m]), cmap="viridis", edgecolors="grey", linewidths=0.3)
            pc.set_clim(0, vmax)
            ax.add_collection(pc)
            ax.set_xlim(-ext, ext)
            ax.set_ylim(-ext, ext)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(labels[m] if r == 0 else row_names[r], fontsize=7)
    fig.colorbar(pc, ax=axes, shrink=0.7, label="fraction of module sum")
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def histogram(path: str | Path, series: dict[str, np.ndarray], bins: np.ndarray, xlabel: str, title: str,
              notes: list[str] | None = None) -> Path:
    """Step histograms of several series on the same bins (values outside go to the edge bins)."""
    bins = np.asarray(bins, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for k, v in series.items():
        ax.hist(np.clip(v, bins[0], bins[-1]), bins, histtype="step", lw=1.6, label=k)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("modules")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, title="\n".join(notes or []), title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
