"""Mutation check (`make mutants`): does the test suite notice semantic bugs?

Copies the repository (``git archive`` of a revision, HEAD by default, or with
``--worktree`` the working tree's tracked and unignored files) into a scratch
directory, never touching the real tree; then, one at a time, applies each mutant
below (a short content pattern replaced in one file, located by content so that
it survives line moves and refactors), runs the relevant test subset with ``-x``
in the scratch copy, and restores the file.  A mutant is *killed* when the tests
fail, *survives* when they pass.  The unmutated subsets run first (baseline): a
subset that fails without a mutant makes the report meaningless and stops it.

A pattern that is not found exactly once fails loudly, naming the mutant: update
its ``find`` text (and ``files`` globs) here when the code it targets changes.

    python bench/mutants.py                 # every mutant, HEAD
    python bench/mutants.py --only argmax   # names containing "argmax"
    python bench/mutants.py --worktree      # the uncommitted working tree
    python bench/mutants.py --list

Writes a table to stdout and bench/results/mutants.json.  Target: 0 survivors.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run_meta import git_commit  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "mutants.json"


@dataclass(frozen=True)
class Mutant:
    name: str
    what: str
    files: tuple[str, ...]  # globs (relative to the repository root) searched for ``find``
    find: str
    replace: str
    tests: tuple[str, ...]  # pytest arguments (files, -k expressions)
    count: int = 1  # occurrences of ``find`` expected over all matching files


COSIM, HLS, TIES = "tests/test_cosim.py", "tests/test_hls_cpp.py", "tests/test_argmax_ties.py"

MUTANTS = [
    # -- rounding ------------------------------------------------------------------------------
    Mutant("golden_round_half_even_int64", "golden half_even ties go to odd (int64 path)",
           ("qat/ir/*.py", "qat/ir/**/*.py"), "((r == half) & (q & 1 == 1))", "((r == half) & (q & 1 == 0))",
           ("tests/test_golden_ops.py",)),
    Mutant("golden_round_half_even_bigint", "golden half_even ties go to odd (Python-int path)",
           ("qat/ir/*.py", "qat/ir/**/*.py"), "(r == half and q & 1)", "(r == half and not q & 1)",
           ("tests/test_golden_ops.py",)),
    Mutant("verilog_round_half_even", "RTL half_even rounds ties to odd",
           ("hls/rtl/*.py", "hls/rtl/**/*.py"), "({sticky} | {n.name}[{s}])", "({sticky} | ~{n.name}[{s}])",
           (COSIM, "-k", "bit_exact and requant_bank")),
    Mutant("cpp_round_half_even", "C++ half_even rounds ties to odd",
           ("hls/cpp/*.py", "hls/cpp/**/*.py"), "inc = rbit && (sticky || q[0])", "inc = rbit && (sticky || !q[0])",
           (HLS, "-k", "csim_bit_exact")),
    # -- saturation ----------------------------------------------------------------------------
    Mutant("golden_saturate_hi", "golden saturates one below the upper limit",
           ("qat/ir/*.py", "qat/ir/**/*.py"), "return np.clip(y, lo, hi)", "return np.clip(y, lo, hi - 1)",
           ("tests/test_golden_ops.py",)),
    Mutant("verilog_saturate_hi", "RTL saturates one below the upper limit",
           ("hls/rtl/*.py", "hls/rtl/**/*.py"), "? {const(hi, w)} : {expr}", "? {const(hi - 1, w)} : {expr}",
           (COSIM, "-k", "bit_exact and requant_bank")),
    Mutant("cpp_saturate_lo", "C++ saturates one above the lower limit",
           ("hls/cpp/*.py", "hls/cpp/**/*.py"), "{out.var}[{idx}] = {lit(lo)};", "{out.var}[{idx}] = {lit(lo + 1)};",
           (HLS, "-k", "csim_bit_exact")),
    # -- sign of a shared (CSE) adder term -----------------------------------------------------
    Mutant("csd_cse_term_sign", "a CSE'd CSD adder adds where it should subtract (and vice versa)",
           ("hls/rtl/*.py", "hls/rtl/**/*.py"), "sub=nd.sub, lo=nd.lo", "sub=not nd.sub, lo=nd.lo",
           (COSIM, "-k", "bit_exact and (cnn2d or seq1d)")),
    # -- argmax tie order ----------------------------------------------------------------------
    Mutant("rtl_argmax_tie_int", "RTL integer argmax: the last index wins ties",
           ("hls/rtl/*.py", "hls/rtl/**/*.py"), 'return f"$signed({ea}) >= $signed({eb})"',
           'return f"$signed({ea}) > $signed({eb})"', (TIES, "-k", "rtl_argmax_ties")),
    Mutant("rtl_argmax_tie_minifloat_pos", "RTL minifloat argmax: the last index wins ties of positive codes",
           ("hls/rtl/*.py", "hls/rtl/**/*.py"), ": ({ma} >= {mb})", ": ({ma} > {mb})",
           (TIES, "-k", "minifloat")),
    Mutant("rtl_argmax_tie_minifloat_neg", "RTL minifloat argmax: the last index wins ties of negative codes",
           ("hls/rtl/*.py", "hls/rtl/**/*.py"), "? ({ma} <= {mb})", "? ({ma} < {mb})",
           (TIES, "-k", "minifloat")),
    Mutant("cpp_argmax_tie", "C++ argmax: the last index wins ties",
           ("hls/cpp/*.py", "hls/cpp/**/*.py"), "if (v > best)", "if (v >= best)", (TIES, "-k", "cpp")),
    # -- threshold direction -------------------------------------------------------------------
    Mutant("rtl_bnn_threshold_direction", "RTL binary threshold: direction +1 and -1 swapped",
           ("hls/rtl/*.py", "hls/rtl/**/*.py"), "if d > 0:  # 2pc", "if d < 0:  # 2pc",
           (COSIM, "-k", "bit_exact and binary")),
    Mutant("rtl_threshold_level_sign", "RTL multi-level threshold: negative direction not negated",
           ("hls/rtl/*.py", "hls/rtl/**/*.py"), "                if f < 0:\n", "                if f > 0:\n",
           (COSIM, "-k", "bit_exact and (seq1d or branch)")),
    Mutant("cpp_threshold_compare", "C++ threshold: x > t instead of x >= t",
           ("hls/cpp/*.py", "hls/cpp/**/*.py"), "cnt += ({x.rd('i')} >= {tn}", "cnt += ({x.rd('i')} > {tn}",
           (HLS, "-k", "csim_bit_exact")),
    # -- ternary adders (--adders ternary) -----------------------------------------------------
    Mutant("rtl_ternary_second_negation", "RTL ternary adder: the second subtracted operand's +1 is dropped",
           ("hls/rtl/*.py", "hls/rtl/**/*.py"), "int(sum(negs) == 2)", "int(sum(negs) == 3)",
           ("tests/test_ternary.py", "-k", "bit_exact")),
    Mutant("rtl_ternary_majority", "RTL ternary adder: the carry-save bit misses one majority term",
           ("hls/rtl/*.py", "hls/rtl/**/*.py"), "((a & b) | (a & c) | (b & c))", "((a & b) | (a & c))",
           ("tests/test_ternary.py", "-k", "bit_exact")),
    # -- folded layers on DSP48 slices (--fold dsp) ----------------------------------------------
    Mutant("rtl_fold_dsp_sign", "RTL --fold dsp: signed inputs zero-extended into the multiplier",
           ("hls/rtl/*.py", "hls/rtl/**/*.py"), "if int(t.lo[i]) < 0 else f\"{{1'b0, {raw}}}\"",
           "if False else f\"{{1'b0, {raw}}}\"", ("tests/test_folded.py", "-k", "dsp_bit_exact")),
    Mutant("rtl_fold_dsp_bias", "RTL --fold dsp: the accumulator starts from zero, not the bias",
           ("hls/rtl/*.py", "hls/rtl/**/*.py"), "init = const(bias, wa) if isinstance(bias, int)",
           "init = const(0, wa) if isinstance(bias, int)", ("tests/test_folded.py", "-k", "dsp_bit_exact")),
    Mutant("rtl_fold_dsp_pack_carry", "RTL --fold dsp packing: the high output misses the low sum's borrow",
           ("hls/rtl/*.py", "hls/rtl/**/*.py"), "(f\" + {{{wa - 1}'d0, {carry}}}\" if carry else \"\")",
           "(\"\" if carry else \"\")", ("tests/test_folded.py", "-k", "dsp_bit_exact")),
    # -- minifloat rounding carry --------------------------------------------------------------
    Mutant("rtl_minifloat_carry", "RTL minifloat rounding drops the carry into the next binade",
           ("hls/rtl/*.py", "hls/rtl/**/*.py"), "[{man + 1}:{man}]', 2, ew)", "[{man}:{man}]', 1, ew)",
           ("tests/test_rtl_minifloat.py", "-k", "format_bank")),
    # -- verification plumbing -----------------------------------------------------------------
    Mutant("cosim_ok_ignores_layers", "CosimResult.ok ignores first_wrong_layer",
           ("rtl_sim/*.py",), " and self.first_wrong_layer is None", "", (COSIM, "-k", "hides")),
    Mutant("tmr_voter_drops_bc", "TMR voter without the (b & c) term",
           ("hls/rtl/*.py", "hls/rtl/**/*.py"), " | (w_active_b & w_active_c);", ";",
           ("tests/test_reconfig.py", "-k", "tmr")),
]


def _files(root: Path, globs: tuple[str, ...]) -> list[Path]:
    out = []
    for p in sorted(root.rglob("*.py")):
        rel = p.relative_to(root).as_posix()
        if any(fnmatch.fnmatch(rel, g) for g in globs) and p not in out:
            out.append(p)
    return out


def locate(root: Path, m: Mutant) -> Path:
    """The one file holding ``m.find`` (exactly ``m.count`` times); raise naming the mutant otherwise."""
    hits = [(p, p.read_text().count(m.find)) for p in _files(root, m.files)]
    hits = [(p, n) for p, n in hits if n]
    total = sum(n for _, n in hits)
    if len(hits) != 1 or total != m.count:
        where = ", ".join(f"{p.relative_to(root)} ({n}x)" for p, n in hits) or "nowhere"
        raise SystemExit(f"mutant '{m.name}': pattern {m.find!r} expected {m.count}x in {list(m.files)}, found "
                         f"{where}; update bench/mutants.py")
    return hits[0][0]


def scratch_copy(rev: str | None, dest: Path) -> None:
    dest.mkdir(parents=True)
    if rev is None:  # the working tree: tracked and untracked-but-not-ignored files
        names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                               capture_output=True).stdout.decode().split("\0")
        for n in filter(None, names):
            src = ROOT / n
            if src.is_file():
                (dest / n).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / n)
    else:
        arc = subprocess.run(["git", "archive", "--format=tar", rev], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=arc, check=True)


def run_tests(work: Path, tests: tuple[str, ...], timeout: float) -> tuple[bool, float, str]:
    """(passed, seconds, last lines of output) of the subset in the scratch copy."""
    env = dict(os.environ, PYTHONPATH=str(work), PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=timeout)
        ok, text = r.returncode == 0, r.stdout + r.stderr
        if r.returncode == 5:  # no test selected: the subset no longer exists
            raise SystemExit(f"no test selected by {' '.join(tests)}; update bench/mutants.py")
    except subprocess.TimeoutExpired:
        ok, text = False, f"timeout after {timeout:.0f} s"
    return ok, time.perf_counter() - t0, "\n".join(text.strip().splitlines()[-3:])


def check_imports(work: Path) -> None:
    """The scratch copy's packages, not the editable install's, must be the ones imported."""
    env = dict(os.environ, PYTHONPATH=str(work))
    code = "import qat, hls, rtl_sim, qrtl; print(*[m.__path__[0] for m in (qat, hls, rtl_sim, qrtl)])"
    paths = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True,
                           check=True).stdout.split()
    bad = [p for p in paths if not Path(p).resolve().is_relative_to(work.resolve())]
    if bad:
        raise SystemExit(f"the scratch copy imports packages from {bad}, not from {work}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rev", default="HEAD", help="revision to copy (default HEAD)")
    ap.add_argument("--worktree", action="store_true", help="copy the working tree instead of a revision")
    ap.add_argument("--only", default="", help="run only mutants whose name contains this text")
    ap.add_argument("--no-baseline", action="store_true", help="skip the unmutated runs")
    ap.add_argument("--timeout", type=float, default=1200, help="seconds per test run")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("-o", "--output", default=str(RESULTS))
    args = ap.parse_args(argv)
    mutants = [m for m in MUTANTS if args.only in m.name]
    if args.list:
        for m in mutants:
            print(f"{m.name:32s} {m.what}")
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="qrtl-mutants-"))
    work = tmp / "repo"
    rev = None if args.worktree else args.rev
    try:
        scratch_copy(rev, work)
        check_imports(work)
        targets = {m.name: locate(work, m) for m in mutants}  # every pattern checked before any test runs
        baseline = {}
        if not args.no_baseline:
            for tests in dict.fromkeys(m.tests for m in mutants):
                ok, secs, tail = run_tests(work, tests, args.timeout)
                baseline[" ".join(tests)] = {"passed": ok, "seconds": round(secs, 1)}
                print(f"baseline {' '.join(tests)}: {'pass' if ok else 'FAIL'} ({secs:.0f} s)", flush=True)
                if not ok:
                    raise SystemExit(f"the unmutated subset {' '.join(tests)} fails:\n{tail}")
        rows = []
        for m in mutants:
            f = targets[m.name]
            orig = f.read_text()
            f.write_text(orig.replace(m.find, m.replace))
            try:
                passed, secs, tail = run_tests(work, m.tests, args.timeout)
            finally:
                f.write_text(orig)
            status = "SURVIVED" if passed else "killed"
            rows.append({"mutant": m.name, "what": m.what, "file": f.relative_to(work).as_posix(), "status": status,
                         "tests": " ".join(m.tests), "seconds": round(secs, 1), "output": tail})
            print(f"{m.name:32s} {status:8s} {secs:6.0f} s  {f.relative_to(work)}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    survivors = [r["mutant"] for r in rows if r["status"] == "SURVIVED"]
    commit = git_commit(args.rev)
    report = {"source": "working tree" if args.worktree else f"{args.rev} ({commit})", "mutants": len(rows),
              "killed": len(rows) - len(survivors), "survived": survivors, "baseline": baseline, "results": rows}
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print()
    print("| mutant | what | status | tests | s |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mutant']} | {r['what']} | {r['status']} | `{r['tests']}` | {r['seconds']:.0f} |")
    print(f"\n{len(rows) - len(survivors)}/{len(rows)} mutants killed; survivors: {survivors or 'none'}; wrote {out}")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
