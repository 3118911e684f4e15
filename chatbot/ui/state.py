"""The running web app's parts, set by the host app's lifespan and read by the callbacks."""

from __future__ import annotations

from chatbot.errors import ConfigError
from chatbot.runtime import Runtime

_runtime: Runtime | None = None


def set_runtime(runtime: Runtime | None) -> None:
    """Install (or clear, with None) the runtime the UI works on."""
    global _runtime
    _runtime = runtime


def runtime() -> Runtime:
    """The runtime opened by ``chatbot.web``'s lifespan."""
    if _runtime is None:
        raise ConfigError("the web UI is not started: run it with 'afina serve'")
    return _runtime
