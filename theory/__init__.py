"""Symbolic layer: sympy derivations, theorem objects and closed forms (THEORY.md §3-§5)."""
