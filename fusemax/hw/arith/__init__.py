"""PE arithmetic: one module per operator, each an Amaranth ``wiring.Component`` with flat
ports and a documented latency, and a bit-exact NumPy twin in :mod:`fusemax.sw.numerics`.

Latency convention: inputs presented (and ``start`` asserted) in cycle 0; a latency-L
operator's result is valid in cycle L. Latency 0 means combinational.

========================  =======  =====================================================
component                 latency  twin (fusemax.sw.numerics)
========================  =======  =====================================================
``mac.Mac``               1        ``mac``: acc <= (load_c ? c : acc) + a*b, exact
``maxv.MaxValid``         0        ``max_valid``: max with valid flags (−∞ = not valid)
``sub.Sub``               0        ``sub``: a − b, exact
``requant.Requant``       0        ``requantize``: round to a format + saturate flag
``rescale.Rescale``       0        ``rescale``: x*c rounded back to x's format (c <= 1)
``exp2.Exp2``             d + 1    ``exp2``: 2^x, x <= 0; start/busy/done; d = exp_degree
``divide.Divider``        w + 3    ``divide``: RNV/RD -> out (w = out.width); start/busy/done
``divide.PipelinedDivider``  w + 3  same, unrolled: a new start every cycle (busy always 0)
``sigmoid.Sigmoid``       d+s+5    ``golden_variants.sigmoid_codes``: Exp2(−|x|), then a
                                   bit-serial 1/(1 + t); s = out.frac (24 by default)
``sigmoid.PipelinedSigmoid``  d+s+5  same, unrolled: a new x every cycle (valid_in/valid_out,
                                   optional tag; no busy)
``log2.Log2``             6        ``golden_variants.log2_codes``: log2 of RD (x > 0;
                                   ``nonpos`` flags x <= 0): normaliser, Horner degree 5
========================  =======  =====================================================
"""

from fusemax.hw.arith.divide import Divider, PipelinedDivider
from fusemax.hw.arith.exp2 import Exp2
from fusemax.hw.arith.log2 import Log2
from fusemax.hw.arith.mac import Mac
from fusemax.hw.arith.maxv import MaxValid
from fusemax.hw.arith.requant import Requant
from fusemax.hw.arith.rescale import Rescale
from fusemax.hw.arith.sigmoid import PipelinedSigmoid, Sigmoid, SigmoidReciprocal
from fusemax.hw.arith.sub import Sub

__all__ = ["Divider", "PipelinedDivider", "Exp2", "Log2", "Mac", "MaxValid", "PipelinedSigmoid", "Requant", "Rescale", "Sigmoid", "SigmoidReciprocal",
           "Sub"]
