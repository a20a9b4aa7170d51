"""The op kinds of the integer network, one spec each (see qat.ir.spec).

=========  ===================================================  ============
kind       meaning                                               module
=========  ===================================================  ============
dense      y[o] = sum_i x[i]*W[i,o] + b[o]                       linear
conv1d     the same per window (K, Ci, Co)                       linear
conv2d     the same per window (KH, KW, Ci, Co)                  linear
bdense     binary XNOR-popcount dot, optional fused threshold    binary
bconv2d    the same per window ('valid')                         binary
maxpool    window maximum (pads never win)                       pool
avgpool    window *sum* ('valid'; 1/count lives in the scale)    pool
reshape    same elements, new shape (flatten)                    shape
concat     along the last axis                                   shape
add        y = a + b (+ ...), inputs share one scale             elementwise
clip       y = min(max(x, lo), hi)                               elementwise
requant    y = sat(round(x*mult / 2^shift)) (or minifloat grid)  requant
threshold  y = base + direction*step*count(x >= T[c,:])          tables
lut        y = table[x - in_lo]                                  tables
argmax     index of the largest real value (first wins)          argmax
=========  ===================================================  ============

Registration order is the order above (the file format and reports list kinds in it).
"""
from . import linear, binary, pool, shape, elementwise, requant, tables, argmax  # noqa: F401  (register)
