"""Demonstrations that use every layer below them: the README tour's input files (``tour``) and the
attack-and-respond loop (``attack_and_respond``: gateway, monitor and respond together)."""
