"""Demonstrations that use every layer below them: the README tour's input files."""
