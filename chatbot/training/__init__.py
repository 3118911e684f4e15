"""Training data from logged chats: export (validation, redaction and splits come later)."""
