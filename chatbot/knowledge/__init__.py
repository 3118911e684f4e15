"""Knowledge-base ingest: files -> entries -> embeddings -> index files."""
