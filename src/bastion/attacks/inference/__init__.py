"""Inference attacks: membership inference, attribute inference, model inversion."""
