"""Retrieval backend: nearest knowledge-base entries by embedding similarity."""
