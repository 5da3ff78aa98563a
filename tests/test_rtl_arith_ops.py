"""Every PE operator under Verilator (cocotb 2.1), bit for bit against the NumPy twins.

One Verilator build per number system (the ``ArithHarness`` puts all operators of a config
side by side). The exp2 test covers every input of the score difference (2**16 + 4 values
for the 16-bit format); the others run seeded random + edge-case vectors.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from fusemax.config import FuseMaxConfig, NumericsConfig, preset
from fusemax.hw.arith.harness import ArithHarness, exp_all_inputs, harness_vectors
from fusemax.hw.formats import FixedFormat as FF

pytestmark = pytest.mark.verilator

BENCH = "tests.cocotb_benches.tb_arith_ops"

CONFIGS = {
    "fx16": (preset("tiny"), True),          # exhaustive exp
    "int8": (preset("small-int8"), False),
    "away-d3": (FuseMaxConfig("away-d3", 3, 5, NumericsConfig(
        name="away-d3", rounding="nearest_away", exp_degree=3, exp_frac=14, exp=FF(15, 14, signed=False),
        out=FF(12, 4), rd=FF(30, 10), rnv=FF(44, 20))), False),
    "floor-d5": (FuseMaxConfig("floor-d5", 5, 2, NumericsConfig(
        name="floor-d5", rounding="floor", exp_degree=5, out=FF(12, 8), score=FF(14, 9))), True),
}


@pytest.mark.parametrize("key", sorted(CONFIGS))
def test_arith_rtl(key, tmp_path):
    from fusemax.sim.runner import run_cocotb

    cfg, exhaustive = CONFIGS[key]
    vec = harness_vectors(cfg, n=400, seed=7,
                          exp_inputs=exp_all_inputs(cfg) if exhaustive else None)
    vec_path = tmp_path / "vectors.npz"
    np.savez(vec_path, **vec)
    tb_json = tmp_path / "tb.json"
    tb_json.write_text(json.dumps({
        "vectors": str(vec_path),
        "latency": {"exp": cfg.numerics.exp_cycles, "div": cfg.numerics.div_cycles},
        "config": cfg.to_dict(),
    }))
    run_cocotb(ArithHarness(cfg), name=f"arith_{key.replace('-', '_')}", test_module=BENCH,
               extra_env={"FUSEMAX_TB_JSON": str(tb_json)}, timeout_s=900)
