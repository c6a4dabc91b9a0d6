"""Hardening: adversarial training, DP-SGD, sanitisers/detectors, output policies, federated learning, encrypted inference."""
