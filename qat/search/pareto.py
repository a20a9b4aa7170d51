"""Pareto front of metric (higher is better) against LUTs (lower is better): table and plot."""
from __future__ import annotations

from pathlib import Path


def front(points: list[dict]) -> list[bool]:
    """For each point ({'luts', 'metric'}), whether no other point is at least as good in both and
    better in one."""
    flags = []
    for p in points:
        dominated = any(q["luts"] <= p["luts"] and q["metric"] >= p["metric"]
                        and (q["luts"] < p["luts"] or q["metric"] > p["metric"]) for q in points)
        flags.append(not dominated)
    return flags


def table(points: list[dict], layers: list[str], metric_name: str) -> str:
    """Markdown table sorted by LUTs: name, per-layer widths, predicted LUTs, sensitivity, metric, front."""
    head = ["configuration", *layers, "predicted LUTs", "sensitivity", metric_name, "Pareto"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    flags = front(points)
    for p, f in sorted(zip(points, flags), key=lambda t: (t[0]["luts"], -t[0]["metric"], t[0]["name"])):
        rows.append("| " + " | ".join([p["name"], *(str(p["widths"][n]) for n in layers), f"{p['luts']:.0f}",
                                        f"{p['sensitivity']:.4g}", f"{p['metric']:.4f}", "yes" if f else ""]) + " |")
    return "\n".join(rows) + "\n"


def plot(points: list[dict], metric_name: str, path: str | Path, title: str) -> None:
    """Metric vs predicted LUTs; searched points, uniform widths and the chosen one marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for kind, style in (("searched", dict(marker="o", color="tab:blue")),
                        ("uniform", dict(marker="s", color="tab:gray"))):
        pts = [p for p in points if p["kind"] == kind]
        ax.scatter([p["luts"] for p in pts], [p["metric"] for p in pts], label=kind, **style)
        for p in pts:
            if kind == "uniform":
                ax.annotate(p["name"], (p["luts"], p["metric"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    flags = front(points)
    fp = sorted((p for p, f in zip(points, flags) if f), key=lambda p: p["luts"])
    ax.plot([p["luts"] for p in fp], [p["metric"] for p in fp], "--", color="tab:blue", lw=1, label="Pareto front")
    ch = [p for p in points if p.get("chosen")]
    if ch:
        ax.scatter([ch[0]["luts"]], [ch[0]["metric_finetuned"]], marker="*", s=150, color="tab:red",
                   label="chosen, fine-tuned", zorder=5)
    ax.set_xlabel("predicted LUTs")
    ax.set_ylabel(metric_name)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
