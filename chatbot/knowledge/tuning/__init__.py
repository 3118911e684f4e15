"""Embedder fine-tuning: contrastive training on the knowledge base and approved chats."""
