"""Afina's answer backends: a library with one streaming interface; never imports ``chatbot``."""
