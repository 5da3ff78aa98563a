"""The control-schedule format (version 3): the one definition of every instruction's bits.

The compiler encodes with :func:`encode`, the hardware decodes with the same field table
(:data:`OPCODES`), the listing and the waveform translation filter print with :func:`mnemonic`.
See docs/architecture.md section 4 for what each instruction does.

An instruction is 64 bits; the opcode sits in bits [63:58]; each field is a bit range
``(lo, width)`` of the word, unsigned unless named in ``signed``. A memory line of
``16 * mem_lanes`` bits holds :func:`insns_per_line` instructions, the first in the low bits.

Version 2 (the FuseMax binding) over version 1: three K/V slots (``slot`` is 2 bits), TILE's
``serial`` bit (run this tile alone: the +Architecture ablation), LDQ in the background with
the block's state reset moved to the first TILE (or AV) of the block (``first``), and several
instructions per memory line.

Version 3 over version 2: ``WINDOW`` (the sliding window's lower bound in the mask; off after
``start``), TILE's ``restart`` bit (the 3-pass cascade's second pass) and TILE.first no
longer clearing RD (the background AV may still divide by it). Hardware of version 2 would
ignore ``restart`` and silently compute something else, so the version changed: HDR makes a
design stop with ``error.config`` on a schedule of another version.

``MODE`` (sigmoid attention) was added within version 3: hardware without it stops with
``error.opcode`` on it, and a design without the sigmoid unit with ``error.config``. So was
its ``entropy`` bit (the entropy output): a design without ``entropy_unit`` stops with
``error.config`` on it. So were
``FLOWC`` and ``FLOW`` (causal Flow-Attention): a design without the flow engine stops with
``error.config`` on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fusemax.errors import FuseMaxError

VERSION = 3
WORD_BITS = 64
#: K/V buffer slots: a chunk is read by BQK in one epoch and by SLNV in the next, while the
#: chunk after next loads (docs/architecture.md section 5).
KV_SLOTS = 3
#: At most this many instructions share a memory line (the prefetch buffer's line width).
MAX_INSNS_PER_LINE = 8
OPCODE_LO, OPCODE_WIDTH = 58, 6


@dataclass(frozen=True)
class Opcode:
    name: str
    code: int
    fields: dict[str, tuple[int, int]]  # name -> (lo bit, width)
    doc: str
    signed: frozenset[str] = field(default=frozenset())


OPCODES: dict[str, Opcode] = {op.name: op for op in [
    Opcode("HDR", 0x01, {"tag": (0, 32), "version": (32, 16)},
           "schedule header: format version and the config tag it was compiled for"),
    Opcode("SHAPE", 0x02, {"E": (0, 16), "F": (16, 16)}, "head dimensions E (Q, K) and F (V)"),
    Opcode("MASK", 0x03, {"M": (0, 29), "P": (29, 29)}, "keys M and queries P of the workload"),
    Opcode("CAUSAL", 0x04, {"enable": (0, 1)}, "causal mask: key m visible to query p iff m <= p + M - P"),
    Opcode("WINDOW", 0x05, {"W": (0, 29)},
           "window lower bound of the mask: with W > 0, key m visible to query p only if "
           "m > p + M - P - W (with CAUSAL: the sliding window of W keys); 0 = off (default)"),
    Opcode("MODE", 0x06, {"sigmoid": (0, 1), "nonorm": (1, 1), "entropy": (2, 1)},
           "score function of the tiles that follow: sigmoid = 1 makes SLN = sigmoid(BQK) with "
           "no running max (PRM = 1 after a block's first tile: RD and RNV are plain sums; needs "
           "a design with sigmoid_unit, else error.config); nonorm = 1 makes AV store RNV "
           "rounded to the output format (a divide by 1) instead of RNV / RD; entropy = 1 makes "
           "every tile also accumulate RT = sum of SLN·BQK (one more SLNV step: F + 1 cycles) "
           "and every AV also store the entropy H of its queries (nats, s16.11) as line F of "
           "the output block, F + 1 lines (needs a design with entropy_unit, else error.config; "
           "with sigmoid or nonorm: error.config); all 0 after start"),
    Opcode("FLOWC", 0x07, {"clamp": (0, 16)},
           "Flow-Attention constants for the FLOW instructions that follow: clamp = c·log2(e) "
           "in score codes, the bound of the conserved source (needs a design with flow_unit, "
           "else error.config)"),
    Opcode("LDQ", 0x10, {"addr": (0, 26), "p_base": (26, 32)},
           "load a query block (E lines) in the background and stage its first query p_base"),
    Opcode("LDKV", 0x11, {"addr": (0, 26), "slot": (26, 2)},
           "load a K/V chunk (E + F lines) into a buffer slot (0..2), in the background"),
    Opcode("TILE", 0x12, {"serial": (0, 1), "first": (1, 1), "restart": (2, 1), "slot": (26, 2),
                          "m_base": (28, 30)},
           "one rows x cols tile: BQK, LM, RM, PRM, SLN, SLD, RD, SLNV, RNV; serial = 1 runs it "
           "alone (no overlap with the tiles around it); first = 1 starts a query block: reset "
           "RM, make the staged p_base current; restart = 1 starts the sums again over the "
           "same block (PRM = 0 for this tile: RD = SLD, RNV = SLNV) and keeps RM (the "
           "3-pass cascade's second pass, with RM = the global max)"),
    Opcode("FLOW", 0x13, {"addr": (0, 26), "slot": (26, 2), "first": (28, 1), "store": (29, 1),
                          "q_lane": (30, 9), "kv_lane": (39, 9), "count": (48, 10)},
           "causal Flow-Attention on the flow engine: count tokens, token t's Q from lane "
           "q_lane + t of the Q buffer, its K and V from lane kv_lane + t of K/V slot `slot`, "
           "its F outputs into lane q_lane + t of the output buffer; first = 1 starts a "
           "sequence (state 0, token index 0); store = 1 then stores the output buffer's F "
           "lines at addr (needs flow_unit, else error.config)"),
    Opcode("AV", 0x20, {"addr": (0, 26), "first": (26, 1)},
           "divide RNV by RD and store the block's output (F lines); first = 1 (a block with no "
           "tile) resets the state and takes the staged p_base first"),
    Opcode("END", 0x3F, {}, "finish: wait for stores, raise done"),
]}
BY_CODE: dict[int, Opcode] = {op.code: op for op in OPCODES.values()}


def insns_per_line(mem_lanes: int) -> int:
    """Instructions per memory line of ``mem_lanes`` 16-bit words (a power of two, 1..8)."""
    n = (16 * mem_lanes) // WORD_BITS
    if n < 1:
        raise FuseMaxError(f"a memory line of {mem_lanes} 16-bit words cannot hold a "
                           f"{WORD_BITS}-bit instruction")
    k = 1
    while k * 2 <= min(n, MAX_INSNS_PER_LINE):
        k *= 2
    return k


def pack_words(words, mem_lanes: int, lines: int | None = None) -> np.ndarray:
    """Instruction ``words`` as memory lines ((lines, mem_lanes) uint16): instruction j in line
    j // k (k = :func:`insns_per_line`), lanes 4·(j % k) .. 4·(j % k) + 3, low bits first;
    ``lines`` (at least what the words need) pads with zero lines."""
    k = insns_per_line(mem_lanes)
    need = -(-len(words) // k)
    n = need if lines is None else lines
    if n < need:
        raise FuseMaxError(f"{len(words)} instructions need {need} lines of {mem_lanes} lanes, "
                           f"not {n}")
    w = np.zeros(n * k, np.uint64)
    w[:len(words)] = np.asarray([int(x) for x in words], np.uint64)
    out = np.zeros((n, mem_lanes), np.uint16)
    parts = (w[:, None] >> (np.uint64(16) * np.arange(4, dtype=np.uint64))) & np.uint64(0xFFFF)
    out[:, :4 * k] = parts.reshape(n, 4 * k).astype(np.uint16)
    return out


def config_tag(digest: str) -> int:
    """The 32-bit tag a schedule carries: the low 32 bits of the config digest (hex)."""
    return int(digest, 16) & 0xFFFF_FFFF


@dataclass(frozen=True)
class Instruction:
    op: str
    args: dict[str, int]

    @property
    def word(self) -> int:
        return encode(self.op, **self.args)

    def __str__(self) -> str:
        return mnemonic(self.word)


def encode(op: str, **args: int) -> int:
    """The 64-bit word of an instruction; every field is range-checked."""
    if op not in OPCODES:
        raise FuseMaxError(f"unknown instruction {op}; known: {', '.join(OPCODES)}")
    spec = OPCODES[op]
    unknown = set(args) - set(spec.fields)
    if unknown:
        raise FuseMaxError(f"{op} has no field {', '.join(sorted(unknown))} "
                           f"(fields: {', '.join(spec.fields) or 'none'})")
    word = spec.code << OPCODE_LO
    for name, (lo, width) in spec.fields.items():
        value = int(args.get(name, 0))
        if name in spec.signed:
            if not -(1 << (width - 1)) <= value < (1 << (width - 1)):
                raise FuseMaxError(f"{op}.{name} = {value} does not fit {width} signed bits")
            value &= (1 << width) - 1
        elif not 0 <= value < (1 << width):
            raise FuseMaxError(f"{op}.{name} = {value} does not fit {width} bits "
                               f"(0..{(1 << width) - 1})")
        word |= value << lo
    return word


def decode(word: int) -> Instruction:
    """The instruction in a word; an unknown opcode raises FuseMaxError."""
    code = (word >> OPCODE_LO) & ((1 << OPCODE_WIDTH) - 1)
    if code not in BY_CODE:
        raise FuseMaxError(f"word {word:016x}: unknown opcode {code:#04x}")
    spec = BY_CODE[code]
    args = {}
    for name, (lo, width) in spec.fields.items():
        value = (word >> lo) & ((1 << width) - 1)
        if name in spec.signed and value >> (width - 1):
            value -= 1 << width
        args[name] = value
    return Instruction(spec.name, args)


def mnemonic(word: int) -> str:
    """``TILE slot=1 m_base=16``: what a word means, for listings and waveforms."""
    try:
        ins = decode(word)
    except FuseMaxError:
        return f"??? {word:016x}"
    fields = " ".join(f"{k}={v}" for k, v in ins.args.items())
    return f"{ins.op} {fields}".rstrip()
