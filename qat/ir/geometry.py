"""Sliding-window geometry, computed once for every consumer.

Convolutions and pools slide a window over a channels-last tensor; 1-D ops
are 2-D windows of height 1.  Padding is TensorFlow's 'same' / 'valid', or
explicit ONNX/PyTorch amounts per axis ([[top, bottom], [left, right]] for
2-D, [[left, right]] for 1-D).  The golden model, the RTL generator and the
HLS C++ generator all take their loops from :class:`Window`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from .network import NetworkError


def pad_amounts(size: int, kernel: int, stride: int, padding) -> tuple[int, int, int]:
    """(pad_before, pad_after, out_size) along one axis: TensorFlow's 'same'/'valid' rule,
    or explicit (before, after) amounts (ONNX/PyTorch pads)."""
    if isinstance(padding, (list, tuple)):
        before, after = (int(v) for v in padding)
        if before < 0 or after < 0 or size + before + after < kernel:
            raise NetworkError(f"padding {list(padding)} does not fit window {kernel} on input {size}")
        return before, after, (size + before + after - kernel) // stride + 1
    if padding == "valid":
        if size < kernel:
            raise NetworkError(f"window {kernel} larger than input {size} with 'valid' padding")
        return 0, 0, (size - kernel) // stride + 1
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return total // 2, total - total // 2, out
    raise NetworkError(f"unknown padding {padding!r}")


def split_padding(padding) -> tuple:
    """Per-axis padding (height, width) of an op's ``padding`` attribute: 'same' | 'valid' for
    both axes, or explicit [[top, bottom], [left, right]] (2-D) / [[left, right]] (1-D, width)."""
    if isinstance(padding, str):
        return padding, padding
    pairs = [tuple(int(v) for v in p) for p in padding]
    if len(pairs) == 1:
        return (0, 0), pairs[0]
    if len(pairs) == 2:
        return pairs[0], pairs[1]
    raise NetworkError(f"explicit padding needs one [before, after] pair per spatial axis, got {padding!r}")


def pad_2d(h: int, w: int, kernel: tuple[int, int], strides: tuple[int, int], padding
           ) -> tuple[int, int, int, int, int, int]:
    """(pad_top, pad_bottom, out_h, pad_left, pad_right, out_w) of a 2-D window (1-D: h = 1)."""
    ph, pw = split_padding(padding)
    pt, pb, oh = pad_amounts(h, kernel[0], strides[0], ph)
    pl, pr, ow = pad_amounts(w, kernel[1], strides[1], pw)
    return pt, pb, oh, pl, pr, ow


def check_padding(padding: Any, where: str, dims: int) -> None:
    """'same', 'valid', or one non-negative [before, after] pair per spatial axis."""
    if padding in ("same", "valid"):
        return
    ok = isinstance(padding, (list, tuple)) and len(padding) == dims and all(
        isinstance(q, (list, tuple)) and len(q) == 2 and all(isinstance(v, (int, np.integer)) and v >= 0 for v in q)
        for q in padding)
    if not ok:
        raise NetworkError(f"{where}: padding must be 'same', 'valid' or {dims} [before, after] pair(s), "
                           f"got {padding!r}")


@dataclass(frozen=True)
class Window:
    """A window of ``kernel`` = (kh, kw) sliding with ``strides`` = (sh, sw) over an
    input of (h, w, c) (1-D: h = 1), padded by (pt, pb, pl, pr), giving (oh, ow)
    output positions.  ``dims`` is the op's number of spatial axes (1 or 2)."""

    dims: int
    h: int
    w: int
    c: int
    kh: int
    kw: int
    sh: int
    sw: int
    padding: Any
    pt: int
    pb: int
    pl: int
    pr: int
    oh: int
    ow: int

    @staticmethod
    def of(in_shape: tuple[int, ...], kernel: tuple[int, int], strides: tuple[int, int], padding, dims: int
           ) -> "Window":
        """The window over an input of ``in_shape`` ((W, C) for 1-D, (H, W, C) for 2-D)."""
        h, w, c = (1,) + tuple(in_shape) if dims == 1 else tuple(in_shape)
        pt, pb, oh, pl, pr, ow = pad_2d(h, w, kernel, strides, padding)
        return Window(dims, h, w, c, kernel[0], kernel[1], strides[0], strides[1], padding, pt, pb, pl, pr, oh, ow)

    @property
    def kernel(self) -> tuple[int, int]:
        return self.kh, self.kw

    @property
    def strides(self) -> tuple[int, int]:
        return self.sh, self.sw

    @property
    def out_positions(self) -> int:
        return self.oh * self.ow

    def taps(self, y: int, x: int) -> Iterator[tuple[int, int, int]]:
        """(a, b, flat input position iy*w + ix) of the in-bounds taps of output (y, x),
        kernel rows then columns; taps on padding are skipped."""
        for a in range(self.kh):
            iy = y * self.sh + a - self.pt
            if not 0 <= iy < self.h:
                continue
            for b in range(self.kw):
                ix = x * self.sw + b - self.pl
                if 0 <= ix < self.w:
                    yield a, b, iy * self.w + ix

    def patches(self, x: np.ndarray, pad_value=0) -> np.ndarray:
        """(N, H, W, C) -> (N, OH, OW, KH, KW, C) patches (padding filled with ``pad_value``)."""
        return windows(x, self.kernel, self.strides, self.padding, pad_value)

    def to4d(self, x: np.ndarray) -> np.ndarray:
        """A batch of inputs as (N, H, W, C)."""
        return x[:, None] if self.dims == 1 else x

    def from4d(self, y: np.ndarray) -> np.ndarray:
        """A batch of (N, OH, OW, C) results in the op's own rank."""
        return y[:, 0] if self.dims == 1 else y


def windows(x: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int], padding,
            pad_value=0) -> np.ndarray:
    """(N,H,W,C) -> (N,OH,OW,KH,KW,C) patches, padding as :func:`pad_2d`."""
    _, h, w, _ = x.shape
    pt, pb, oh, pl, pr, ow = pad_2d(h, w, kernel, strides, padding)
    if pt or pb or pl or pr:
        xp = np.full((x.shape[0], h + pt + pb, w + pl + pr, x.shape[3]), pad_value, dtype=x.dtype)
        xp[:, pt:pt + h, pl:pl + w, :] = x
    else:
        xp = x
    v = np.lib.stride_tricks.sliding_window_view(xp, kernel, axis=(1, 2))  # N,H',W',C,KH,KW
    v = v[:, ::strides[0], ::strides[1]][:, :oh, :ow]
    return np.moveaxis(v, 3, 5)  # N,OH,OW,KH,KW,C


def op_window(op, in_shape: tuple[int, ...]) -> Window:
    """The window of a convolution or pooling op over an input of ``in_shape`` (from its spec)."""
    from .spec import spec_of

    spec = spec_of(op.kind)
    if spec is None or spec.geometry is None:
        raise NetworkError(f"{op.where()}: has no window geometry")
    return spec.geometry(op, tuple(in_shape))
