"""Afina: a customer-support chatbot that learns from its own conversations."""
