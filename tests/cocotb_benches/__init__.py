"""cocotb test modules (run inside the simulator by :func:`fusemax.sim.runner.run_cocotb`).

They are imported as ``tests.cocotb_benches.<module>``; pytest does not collect them (their
names start with ``tb_``).
"""
