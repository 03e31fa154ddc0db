"""Experiments: Monte Carlo sweeps, the signal-plus-noise CNN, figures and the rmt CLI."""
