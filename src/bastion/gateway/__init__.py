"""The secure inference gateway (FastAPI)."""
