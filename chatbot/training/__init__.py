"""Training data from logged chats: examples, redaction, splits, validation, report, lineage."""
