"""The integer network (IR) and its analysis: tensor types, the network and its file format,
one spec per op kind (qat.ir.ops), the golden model, interval analysis and IR passes."""
from . import ops  # noqa: F401  (registers the built-in op kinds)
