"""Rendering an Assessment: JSON (versioned schema), HTML, SARIF."""
