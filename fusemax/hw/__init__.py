"""Hardware: number formats, arithmetic units, PEs, arrays, buffers, sequencer, top (Amaranth)."""
