"""Load test: real Socket.IO sessions speaking Chainlit's protocol against ``afina serve``.

Run ``python -m tests.load --help``; ``tests/load/README.md`` has the targets and figures."""
