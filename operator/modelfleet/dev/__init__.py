"""What only development, tests and benchmarks use, never imported by the operator: the local
control plane, the engine emulator and load generator, trace replay, and `make demo`."""
