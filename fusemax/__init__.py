"""FuseMax: attention as a 1-pass cascade of extended Einsums, on a generated 2D + 1D PE array.

Subpackages follow the data: :mod:`fusemax.sw` (cascade language, analysis, reference and golden
models, compiler), :mod:`fusemax.hw` (number formats and Amaranth hardware), :mod:`fusemax.sim`
(Verilator/cocotb runner and testbenches).
"""

__version__ = "0.1.0"
