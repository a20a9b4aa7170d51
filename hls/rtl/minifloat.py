"""Verilog building blocks for minifloat tensors (see hls.rtl.minifloat_code for the code).

* :func:`decode`: a 1+E+M bit code -> the raw fixed-point integer (a mux over
  the reachable exponent fields, then a conditional negation);
* :func:`round_to_code`: sign and magnitude of an exact integer -> the code
  of round(value / 2^s) on the minifloat grid, bit-exact with
  ``qat.ir.golden.minifloat_round`` (every rounding mode, subnormals,
  saturation to the largest finite value);
* :func:`code_ge`: value comparison of two codes (sign-magnitude, -0 = +0).

Rounding (``round_to_code``): with A = |n| and r0 = s + (1 - bias - M) (the
bit of A worth one smallest subnormal), the golden rule rounds at bit
r = max(p - M, r0), p = A's leading-one position.  With k = r - r0 >= 0 the
result is q << k raw units, q = round(A / 2^r) in [0, 2^(M+1)].  A priority
mux over A's bits from the top picks k (a leading one at r0 + M + k) and,
for that k, the M+1 kept bits, the round bit and the sticky OR of all lower
bits (a shared prefix-OR chain); leading ones at r0 + M + maxe and above
saturate outright.  The sign picks the magnitude rounding (floor rounds a
negative magnitude up, half_up rounds a negative tie down).  Then
q = kept + inc, exponent field = k + q[M+1:M] (a carry into bit M+1 moves
to the next binade with mantissa 0), saturation compares {exponent,
mantissa} with the largest finite code, and zero gets sign 0.
"""
from __future__ import annotations

from qat.ir.types import MinifloatType

from hls.rtl.minifloat_code import max_magnitude_code
from hls.rtl.text import ModuleText, Sig

ROUND_INC = {  # magnitude increment from (negative, round bit, sticky, kept lsb)
    "half_even": lambda neg, rb, st, lsb: f"{rb} & ({st} | {lsb})",
    "half_away": lambda neg, rb, st, lsb: rb,
    "half_up": lambda neg, rb, st, lsb: rb if neg is None else f"{rb} & (~{neg} | {st})",
    "floor": lambda neg, rb, st, lsb: None if neg is None else f"{neg} & ({rb} | {st})",
    "toward_zero": lambda neg, rb, st, lsb: None,
}


def _ubits(v: int) -> int:
    return max(int(v).bit_length(), 1)


def decode(m: ModuleText, code: str, t: MinifloatType, lo: int, hi: int, tag: str) -> tuple[Sig | None, Sig]:
    """(sign, magnitude) of the code wire ``code`` ((1+E+M) bits) whose raw value
    lies in [lo, hi]: sign a 1-bit Sig (None when the value is never negative),
    magnitude a Sig of bitlen(max(|lo|,|hi|)) + 1 bits holding |raw|."""
    man, eb = t.man_bits, t.exp_bits
    big = max(abs(int(lo)), abs(int(hi)))
    if big == 0:
        m.unused.append(code)  # always zero: the code is not read (lint: no unused bits)
        return None, m.const_sig(0)
    aw = max(big.bit_length(), man)
    kmax = max(0, min(big.bit_length() - man, (1 << eb) - 1))  # reachable exponent fields 0..kmax
    ebits = f"{code}[{eb + man - 1}:{man}]"
    mbits = f"{code}[{man - 1}:0]"
    dm = m.fresh(f"dm{tag}")
    if kmax == 0:  # only subnormals reachable: the exponent field is not read
        m.unused.append(ebits)
        expr = mbits if aw == man else f"{{{aw - man}'b0, {mbits}}}"
        m.lines.append(f"  wire [{aw - 1}:0] {dm} = {expr};")
    else:
        m.lines.append(f"  reg [{aw - 1}:0] {dm};")
        m.lines.append("  always @(*) begin")
        m.lines.append(f"    case ({ebits})")
        for k in range(kmax + 1):
            if k == 0:
                val, w = mbits, man
            else:
                val = f"1'b1, {mbits}" + (f", {k - 1}'b0" if k > 1 else "")
                w = man + k
            pad = f"{aw - w}'b0, " if aw > w else ""
            m.lines.append(f"      {eb}'d{k}: {dm} = {{{pad}{val}}};")
        if kmax < (1 << eb) - 1:
            m.lines.append(f"      default: {dm} = {aw}'d0;  // codes beyond the proven range")
        m.lines.append("    endcase")
        m.lines.append("  end")
    mag = m.wire(f"mg{tag}", aw + 1, 0, big, f"{{1'b0, {dm}}}")
    if int(lo) >= 0:
        m.unused.append(f"{code}[{eb + man}]")  # never negative: the sign bit is not read
        return None, mag
    sign = Sig(m.fresh(f"sg{tag}"), 1, 0, 1)
    m.lines.append(f"  wire {sign.name} = {code}[{eb + man}];")
    return sign, mag


def value(m: ModuleText, sign: Sig | None, mag: Sig, lo: int, hi: int, tag: str) -> Sig:
    """The raw integer (two's complement, as wide as ``mag``) of a decoded code in [lo, hi]."""
    if sign is not None and (mag.hi == 0 or int(hi) <= 0):
        m.unused.append(sign.name)  # the sign is known here (callers of decode may still read it)
    if sign is None or mag.hi == 0:
        return Sig(mag.name, mag.width, int(lo), int(hi), mag.stage, mag.level)
    if int(hi) <= 0:
        return m.wire(f"x{tag}", mag.width, int(lo), int(hi), f"-{mag.name}", src=mag, levels=1)
    return m.wire(f"x{tag}", mag.width, int(lo), int(hi), f"{sign.name} ? -{mag.name} : {mag.name}", src=mag,
                  levels=1)


def _bits(a: Sig, ab: int, lo: int, n: int) -> str:
    """Bits [lo + n - 1 : lo] of the non-negative ``a`` (payload bits [ab-1:0]), zeros outside."""
    parts = []
    j = lo + n - 1
    while j >= lo:
        if j >= ab:
            stop = max(ab, lo)
            parts.append(f"{j - stop + 1}'b0")
            j = stop - 1
        elif j < 0:
            parts.append(f"{j - lo + 1}'b0")
            j = lo - 1
        else:
            bot = max(lo, 0)
            parts.append(f"{a.name}[{j}:{bot}]" if j > bot else f"{a.name}[{j}]")
            j = bot - 1
    return parts[0] if len(parts) == 1 else "{" + ", ".join(parts) + "}"


def _zext(expr: str, width: int, to: int) -> str:
    return expr if to == width else f"{{{to - width}'b0, {expr}}}"


def round_to_code(m: ModuleText, sign: Sig | None, a: Sig, s: int, rounding: str, t: MinifloatType) -> Sig:
    """Code (a (1+E+M)-bit Sig) of minifloat_round(+-a, s): ``a`` >= 0 is the exact
    magnitude, ``sign`` (1 bit, None when never negative) its sign; see the module
    docstring.  Three logic levels (normalize, round, saturate/pack), registered
    between them under --pipeline depth:N."""
    man, eb = t.man_bits, t.exp_bits
    cw = 1 + eb + man
    ab = max(int(a.hi), 0).bit_length()
    if ab == 0:  # always zero: the operand (and its sign) are read by nothing
        m.unused.extend([a.name] + ([sign.name] if sign is not None else []))
        z = m.wire("mz", cw, 0, 0, f"{cw}'d0")
        return Sig(z.name, cw, 0, 0, -1, 0)
    maxe = t.max_exp_field
    r0 = s + t.unit_exp  # bit of A worth one smallest subnormal
    stage = max(a.stage, sign.stage if sign else 0, 0)
    a = m.at_stage(a, stage)
    if sign is not None:
        sign = m.at_stage(sign, stage)
    if a.width > ab:
        m.unused.append(f"{a.name}[{a.width - 1}:{ab}]")
    kmin, kmax = max(1, -(r0 + man)), min(maxe - 1, ab - 1 - r0 - man)
    big_lo = r0 + man + maxe  # a leading one here or above is beyond the largest binade
    big = None
    if ab - 1 >= big_lo:
        big = f"(|{a.name}[{ab - 1}:{max(big_lo, 0)}])" if ab - 1 > max(big_lo, 0) else f"{a.name}[{ab - 1}]"
    kw = _ubits(max(kmax, 0))
    pre: list[str] = []  # pre[j] = OR of a[j:0]

    def sticky(j: int) -> str:
        j = min(j, ab - 1)
        if j < 0:
            return "1'b0"
        while len(pre) <= j:
            q = len(pre)
            name = m.fresh("st")
            m.lines.append(f"  wire {name} = {a.name}[{q}]" + (f" | {pre[q - 1]};" if q else ";"))
            pre.append(name)
        return pre[j]

    def branch(k: int) -> str:
        pos = r0 + k
        return f"{{{kw}'d{k}, {_bits(a, ab, pos, man + 1)}, {_bits(a, ab, pos - 1, 1)}, {sticky(pos - 2)}}}"

    expr = branch(0)
    for k in range(kmin, kmax + 1):  # priority mux: the highest set bit r0 + M + k wins
        expr = f"{_bits(a, ab, r0 + man + k, 1)} ? {branch(k)} : ({expr})"
    # bundle 1: [sign][big] k(kw) kept(M+1) round sticky
    head = ([sign.name] if sign else []) + ([big] if big else [])
    w1 = len(head) + kw + man + 3
    b1 = m.wire("nm", w1, 0, 0, "{" + ", ".join(head + [f"({expr})"]) + "}", src=a, levels=1)
    b1 = m.maybe_register(b1)
    m.unused.append(b1.name)
    f_st, f_rb, f_kept = f"{b1.name}[0]", f"{b1.name}[1]", f"{b1.name}[{man + 2}:2]"
    f_k = f"{b1.name}[{man + 3 + kw - 1}:{man + 3}]" if kw > 1 else f"{b1.name}[{man + 3}]"
    pos = man + 3 + kw
    f_big = f_sign = None
    if big:
        f_big, pos = f"{b1.name}[{pos}]", pos + 1
    if sign:
        f_sign = f"{b1.name}[{pos}]"
    inc = ROUND_INC[rounding](f_sign, f_rb, f_st, f"{b1.name}[2]")
    q = m.fresh("rq")
    m.lines.append(f"  wire [{man + 1}:0] {q} = {{1'b0, {f_kept}}}" + (f" + {{{man + 1}'b0, {inc}}};" if inc else ";"))
    ew = max(_ubits(max(kmax, 0) + 2), eb)
    ex = m.fresh("ex")
    m.lines.append(f"  wire [{ew - 1}:0] {ex} = {_zext(f_k, kw, ew)} + {_zext(f'{q}[{man + 1}:{man}]', 2, ew)};")
    # bundle 2: [sign][big] nonzero exponent(ew) mantissa(M)
    head2 = ([f_sign] if f_sign else []) + ([f_big] if f_big else [])
    w2 = len(head2) + 1 + ew + man
    b2 = m.wire("rd", w2, 0, 0, "{" + ", ".join(head2 + [f"(|{q})", ex, f"{q}[{man - 1}:0]"]) + "}", src=b1,
                levels=1)
    b2 = m.maybe_register(b2)
    m.unused.append(b2.name)
    g_mant = f"{b2.name}[{man - 1}:0]"
    g_exp = f"{b2.name}[{man + ew - 1}:{man}]"
    g_nz = f"{b2.name}[{man + ew}]"
    p2 = man + ew + 1
    g_big = g_sign = None
    if f_big:
        g_big, p2 = f"{b2.name}[{p2}]", p2 + 1
    if f_sign:
        g_sign = f"{b2.name}[{p2}]"
    maxc = max_magnitude_code(t)
    ke = max(kmax, 0)  # largest k: exponent field up to ke + 2 (mantissa 0) or ke + 1 (any mantissa)
    sat_possible = (big is not None or ke + 2 > maxe
                    or (ke + 1 == maxe and t.max_mantissa_at_top < (1 << man) - 1))
    low = f"{b2.name}[{man + eb - 1}:0]"  # exponent field (low E bits) and mantissa
    if sat_possible:
        over = f"({{{g_exp}, {g_mant}}} > {{{ew}'d{maxe}, {man}'d{t.max_mantissa_at_top}}})"
        sat = f"{g_big} | {over}" if g_big else over
        mag = f"(({sat}) ? {eb + man}'d{maxc} : {low})"
    else:
        mag = low
    sgn = (f"{g_sign} & ({g_nz} | {g_big})" if g_big else f"{g_sign} & {g_nz}") if g_sign else "1'b0"
    c = m.wire("mf", cw, 0, 0, f"{{{sgn}, {mag}}}", src=b2, levels=1)
    return c


def code_ge(a: str, b: str, cw: int) -> str:
    """1-bit expression: value(a) >= value(b) for the (cw)-bit code wires a, b (-0 equals +0)."""
    ma, mb = f"{a}[{cw - 2}:0]", f"{b}[{cw - 2}:0]"
    sa, sb = f"{a}[{cw - 1}]", f"{b}[{cw - 1}]"
    return (f"((~(|{ma}) & ~(|{mb})) | (({sa} != {sb}) ? {sb} : ({sa} ? ({ma} <= {mb}) : ({ma} >= {mb}))))")


def _mag_cmp(mag: str, op: str, k: int, w: int) -> str:
    """``mag op k`` for a w-bit magnitude and a constant k, with the comparisons a
    constant would make trivial written out (lint: no constant comparisons)."""
    top = (1 << w) - 1
    if op == ">=":
        return "1'b1" if k == 0 else f"(&{mag})" if k == top else f"({mag} >= {w}'d{k})"
    return f"(~(|{mag}))" if k == 0 else "1'b1" if k == top else f"({mag} <= {w}'d{k})"


def code_vs_const(c: str, cw: int, bound: int, t: MinifloatType, below: bool) -> str:
    """1-bit expression for a code wire c: value >= bound (``below``: value <= bound);
    ``bound`` a raw value on the grid of t."""
    from hls.rtl.minifloat_code import encode_one

    k = encode_one(bound, t) & ((1 << (cw - 1)) - 1)  # magnitude code of the bound
    s, mag = f"{c}[{cw - 1}]", f"{c}[{cw - 2}:0]"
    zero = f"(~(|{mag}))"
    if not below:  # x >= bound
        if bound == 0:
            return f"(~{s} | {zero})"
        if bound > 0:
            return f"(~{s} & {_mag_cmp(mag, '>=', k, cw - 1)})"
        return f"(~{s} | {_mag_cmp(mag, '<=', k, cw - 1)})"
    if bound == 0:  # x <= bound
        return f"({s} | {zero})"
    if bound > 0:
        return f"({s} | {_mag_cmp(mag, '<=', k, cw - 1)})"
    return f"({s} & {_mag_cmp(mag, '>=', k, cw - 1)})"


def plus_zero(m: ModuleText, c: Sig) -> Sig:
    """``c`` with a negative zero turned into +0 (code 0)."""
    cw = c.width
    return m.wire("pz", cw, 0, 0, f"{{{c.name}[{cw - 1}] & (|{c.name}[{cw - 2}:0]), {c.name}[{cw - 2}:0]}}", src=c)
