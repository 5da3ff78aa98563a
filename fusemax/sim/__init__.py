"""Simulation: Verilator/cocotb runner, testbenches, reports."""
