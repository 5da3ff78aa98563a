"""``verilator --lint-only -Wall`` on the generated Verilog of ``tiny``, ``rect``, ``tiny-flow`` and
``tiny-entropy``.

Waivers (local to this test, in a Verilator control file written next to the Verilog). All
of them are artefacts of how Amaranth/Yosys writes Verilog, not design problems; the same list
(less CASEINCOMPLETE) is what Systars and coreblocks waive for Amaranth output
(../shared/reference/anchors.md, section 3.4):

* ``WIDTHEXPAND``, ``WIDTHTRUNC``: Yosys emits operands at their natural widths (constants,
  sign bits, ``!`` on a vector) and relies on Verilog's implicit extension/truncation; Amaranth
  has already fixed every width.
* ``UNUSEDSIGNAL``: Yosys keeps intermediate wires and unused slices (e.g. the unused low bits
  of a rounding shift, unused port bits of shared components).
* ``PROCASSINIT``: registers get both an initial value (their Amaranth reset value) and a
  synchronous reset assignment.
* ``DECLFILENAME``: one file holds every module, with hierarchical names like
  ``fusemax_top.array2d``.
* ``CASEINCOMPLETE``: Yosys writes ``casez`` for Amaranth ``Switch``/FSM logic without a
  ``default`` arm; every such process assigns its outputs before the ``case``, so no latch is
  inferred (and Verilator's ``LATCH`` warning, not waived, would say so).

Anything else (``LATCH``, ``MULTIDRIVEN``, ``COMBDLY``, ``BLKSEQ``, ``UNDRIVEN``...) fails.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from fusemax.config import preset
from fusemax.hw.verilog import TOP_NAME, generate_verilog

WAIVED = ("WIDTHEXPAND", "WIDTHTRUNC", "UNUSEDSIGNAL", "PROCASSINIT", "DECLFILENAME", "CASEINCOMPLETE")

pytestmark = pytest.mark.verilator


@pytest.mark.parametrize("name", ["tiny", "rect", "tiny-flow", "tiny-entropy"])
def test_lint_wall_clean(name, tmp_path):
    from fusemax.sim.toolchain import find_verilator, verilator_env

    vl = find_verilator()
    vpath = tmp_path / f"{TOP_NAME}.v"
    vpath.write_text(generate_verilog(preset(name)))
    waivers = tmp_path / "waivers.vlt"
    waivers.write_text("`verilator_config\n" + "".join(f"lint_off -rule {r}\n" for r in WAIVED))
    proc = subprocess.run(
        [str(vl.executable), "--lint-only", "-Wall", "--top-module", TOP_NAME, str(waivers), str(vpath)],
        capture_output=True, text=True, env=verilator_env(), timeout=600,
    )
    warnings = sorted(set(re.findall(r"%(?:Warning|Error)-?([A-Z0-9_]*)", proc.stderr)))
    assert proc.returncode == 0 and not warnings, f"lint of {name}: {warnings}\n{proc.stderr[:4000]}"
