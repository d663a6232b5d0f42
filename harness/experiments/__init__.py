"""Experiments: library functions (config, ctx) -> Measurement that claims refer to by name."""
