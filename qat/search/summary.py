"""The readable summary of a search report (``qrtl search``'s console output)."""
from __future__ import annotations

from typing import Any


def print_summary(rep: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(width=160)
    opts = rep["options"]
    t = Table(title=f"{rep['model']}: sensitivity and price per layer and width ({opts['price']} prices, "
                    f"objective {opts['objective']})")
    for c in ("layer", "width", "loss increase", "Hessian sens.", "LUTs"):
        t.add_column(c, justify="left" if c == "layer" else "right")
    for r in rep["table"]:
        t.add_row(r["layer"], str(r["width"]), f"{r['loss_increase']:.4g}", f"{r['hessian_sensitivity']:.4g}",
                  "-" if r["luts"] is None else f"{r['luts']:.0f}")
    con.print(t)
    ch = rep["chosen"]
    ws = ", ".join(f"{k}={v}" for k, v in ch["widths"].items())
    con.print(f"chosen widths: {ws}; predicted {ch['predicted_luts']:.0f} LUTs, sensitivity {ch['sensitivity']:.4g}; "
              f"metric {ch['metric_before_finetune']:.4f} before, {ch['metric']:.4f} after fine-tuning")
    for p in rep["configurations"]:
        if p["kind"] == "uniform":
            con.print(f"  {p['name']}: predicted {p['luts']:.0f} LUTs, metric {p['metric']:.4f} (no fine-tuning)")
    v = rep.get("verification")
    if v:
        g, c = v["golden_vs_framework"], v["cosim"]
        con.print(f"verification: golden == framework on {g['exact_vectors']}/{g['vectors']} vectors; RTL "
                  f"co-simulation {c['exact_vectors']}/{c['vectors']} bit-exact")
        if "synthesized_luts" in ch:
            con.print(f"whole network: {ch['synthesized_luts']} LUTs synthesized vs {ch['predicted_luts']:.0f} "
                      f"predicted (ratio {ch['predicted_over_synthesized']:.3f})")
    con.print(f"jobs run: {rep['jobs_run']} (the rest from the cache)")
