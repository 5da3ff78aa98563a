"""The 2D array: *rows* x *cols* :class:`~fusemax.hw.pe2d.PE2D` with broadcast buses, the
(key, query) mask, and one reduction tree per column and quantity.

* **Buses**: ``q_line[c]`` (a Q buffer line) goes down column c; ``kv_line[r]`` (a K or V
  buffer line) goes along row r; ``rm[c]`` (RM_new of 1D PE c) goes up column c.
* **Mask**: PE(r, c) sees key m = m_base + r and query p = p_base + c; it is valid iff
  m < M, p < P, (not causal or m <= p + M - P, i.e. m + P <= p + M) and (W = 0 or
  m > p + M - P - W, i.e. p + M < m + P + W). Padding lanes (p >= P) are invalid, so they
  never raise a flag. ``causal`` is ``CAUSAL.enable``, ``window`` the W of ``WINDOW``.
* **Trees** (per column, over r; each root is a register, latency 1):
  ``lm``: MaxValid tree of (score, valid) -> LM, LM.valid;
  ``sld``: exact sum of SLN (``config.sld_width`` bits);
  ``slnv``: exact sum of the MAC products SLN·V[f] (``config.slnv_width`` bits; with
  ``entropy_unit`` also SLNQ = Σ SLN·BQK in the RT step, ``mac_ent``).
  The sums are exact, so the tree's shape does not matter (docs/numerics.md).

Controls (``mac_*``, ``score_en``, ``exp_start``) are broadcast to every PE.
``score_sat`` is the OR of the PEs' saturation pulses. With ``sigmoid_unit``, ``sig_mode``
goes to every PE and ``sig_done`` is PE(0, 0)'s sigmoid done (they all start together and take
equally long). The sequencer times the SLN exps by
the 1D array's PRM exp (same start, same latency), so every PE instance is identical (the
generated Verilog then holds one PE module).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from fusemax.hw.arith import MaxValid
from fusemax.hw.pe2d import PE2D, operand_widths
from fusemax.sw.schedule import OPCODES

#: Widths of the mask fields (from the schedule format's field table).
MASK_W = {"M": OPCODES["MASK"].fields["M"][1], "P": OPCODES["MASK"].fields["P"][1],
          "m_base": OPCODES["TILE"].fields["m_base"][1], "p_base": OPCODES["LDQ"].fields["p_base"][1],
          "window": OPCODES["WINDOW"].fields["W"][1]}


class Array2D(wiring.Component):
    def __init__(self, config):
        self.config = config
        nc = config.numerics
        R, C = config.rows, config.cols
        w = operand_widths(config)
        self.widths = w
        sig = {"sig_mode": In(1), "sig_done": Out(1)} if config.sigmoid_unit else {}
        if config.entropy_unit:
            sig["mac_ent"] = In(1)
        super().__init__({**sig,
            "q_line": In(data.ArrayLayout(signed(w["q"]), C)),
            "kv_line": In(data.ArrayLayout(signed(w["kv"]), R)),
            "mac_en": In(1), "mac_first": In(1), "mac_sel": In(1),
            "score_en": In(1), "exp_start": In(1),
            "m_base": In(MASK_W["m_base"]), "p_base": In(MASK_W["p_base"]),
            "M": In(MASK_W["M"]), "P": In(MASK_W["P"]), "causal": In(1),
            "window": In(MASK_W["window"]),
            "rm": In(data.ArrayLayout(nc.score.shape(), C)),
            "rm_valid": In(C),
            "lm": Out(data.ArrayLayout(nc.score.shape(), C)),
            "lm_valid": Out(C),
            "sld": Out(data.ArrayLayout(signed(config.sld_width), C)),
            "slnv": Out(data.ArrayLayout(signed(config.slnv_width), C)),
            "score_sat": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        nc = cfg.numerics
        R, C = cfg.rows, cfg.cols

        pes = [[PE2D(cfg) for _ in range(C)] for _ in range(R)]
        for r in range(R):
            for c in range(C):
                m.submodules[f"pe_r{r}_c{c}"] = pes[r][c]

        # Mask terms: per row m + P, m + P + W and m < M; per column p + M and p < P.
        causal, window = self.causal, self.window
        windowed = Signal(name="mask_windowed")
        m.d.comb += windowed.eq(window != 0)
        row_lhs, row_win, row_ok, col_rhs, col_ok = [], [], [], [], []
        for r in range(R):
            lhs = Signal(unsigned(34), name=f"mask_row{r}_mP")
            win = Signal(unsigned(34), name=f"mask_row{r}_mPW")
            ok = Signal(name=f"mask_row{r}_ok")
            m.d.comb += [lhs.eq(self.m_base + r + self.P), win.eq(lhs + window),
                         ok.eq(self.m_base + r < self.M)]
            row_lhs.append(lhs)
            row_win.append(win)
            row_ok.append(ok)
        for c in range(C):
            rhs = Signal(unsigned(34), name=f"mask_col{c}_pM")
            ok = Signal(name=f"mask_col{c}_ok")
            m.d.comb += [rhs.eq(self.p_base + c + self.M), ok.eq(self.p_base + c < self.P)]
            col_rhs.append(rhs)
            col_ok.append(ok)

        sats = []
        for r in range(R):
            for c in range(C):
                pe = pes[r][c]
                m.d.comb += [
                    pe.q.eq(self.q_line[c]),
                    pe.kv.eq(self.kv_line[r]),
                    pe.mac_en.eq(self.mac_en),
                    pe.mac_first.eq(self.mac_first),
                    pe.mac_sel.eq(self.mac_sel),
                    pe.score_en.eq(self.score_en),
                    pe.valid_in.eq(row_ok[r] & col_ok[c] & (~causal | (row_lhs[r] <= col_rhs[c]))
                                   & (~windowed | (col_rhs[c] < row_win[r]))),
                    pe.rm.eq(self.rm[c]),
                    pe.rm_valid.eq(self.rm_valid[c]),
                    pe.exp_start.eq(self.exp_start),
                ]
                if cfg.sigmoid_unit:
                    m.d.comb += pe.sig_mode.eq(self.sig_mode)
                if cfg.entropy_unit:
                    m.d.comb += pe.mac_ent.eq(self.mac_ent)
                sats.append(pe.score_sat)
        m.d.comb += self.score_sat.eq(Cat(*sats).any())
        if cfg.sigmoid_unit:  # every PE's sigmoid starts together and takes as long
            m.d.comb += self.sig_done.eq(pes[0][0].sig_done)

        # Column trees.
        for c in range(C):
            col = [pes[r][c] for r in range(R)]
            # LM: MaxValid tree.
            level = [(pe.score, pe.valid) for pe in col]
            depth = 0
            while len(level) > 1:
                nxt = []
                for i in range(0, len(level) - 1, 2):
                    node = MaxValid(nc.score.shape())
                    m.submodules[f"lm_c{c}_l{depth}_{i // 2}"] = node
                    (a, av), (b, bv) = level[i], level[i + 1]
                    m.d.comb += [node.a.eq(a), node.a_valid.eq(av), node.b.eq(b), node.b_valid.eq(bv)]
                    nxt.append((node.y, node.y_valid))
                if len(level) % 2:
                    nxt.append(level[-1])
                level = nxt
                depth += 1
            lm_y, lm_v = level[0]
            m.d.sync += [self.lm[c].eq(lm_y), self.lm_valid[c].eq(lm_v)]
            # SLD and SLNV: exact sums (balanced adder trees).
            m.d.sync += [
                self.sld[c].eq(_tree_sum([pe.sln for pe in col])),
                self.slnv[c].eq(_tree_sum([pe.prod for pe in col])),
            ]
        return m


def _tree_sum(values):
    vals = list(values)
    while len(vals) > 1:
        nxt = [vals[i] + vals[i + 1] for i in range(0, len(vals) - 1, 2)]
        if len(vals) % 2:
            nxt.append(vals[-1])
        vals = nxt
    return vals[0]
