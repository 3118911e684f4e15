"""Load test: real Socket.IO sessions speaking Chainlit's protocol against ``afina serve``.

Run ``python -m tests.load --help``; README.md ("Serving a team") has the targets and figures."""
