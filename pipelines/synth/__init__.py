"""Test instruments: the synthetic extract generator and the simulated vendor trial load.

Validation never imports this package: what finds defects must not know how they were made.
"""
