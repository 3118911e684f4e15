"""The ``afina`` command line: one Typer sub-app per noun."""
