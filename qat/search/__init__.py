"""Mixed-precision search priced in synthesized hardware (``qrtl search``).

One job per module: ``frameworks`` (re-quantize a QKeras/Brevitas layer to a width, loss,
Hessian products, fine-tuning), ``sensitivity`` (Hutchinson trace and measured loss increase),
``price`` (a layer's integer sub-network -> Verilog -> LUTs, by Yosys or the fast adder count),
``cache`` (results on disk by content hash), ``ilp`` (the allocation, HiGHS through
scipy.optimize.milp), ``jobs`` (Ray tasks, progress), ``verify`` (golden == framework ->
co-simulation -> whole-network synthesis), ``pareto`` (table and plot), ``run`` (the search).
"""
