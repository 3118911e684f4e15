"""Personal-data detection for training exports: Presidio + offline spaCy models + Afina's rules."""
