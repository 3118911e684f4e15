"""``afina llm serve``: the local OpenAI-compatible model server (SmolLM2 via llama.cpp)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from backends import llm_server
from chatbot.backend_pool import register_llm_defaults, stale_backends
from chatbot.cli.common import console, err, open_runtime
from chatbot.errors import ConfigError
from chatbot.runtime import Runtime
from chatbot.settings import get_settings
from chatbot.training.finetune import serving

app = typer.Typer(help="The local LLM server.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """The local OpenAI-compatible model server."""


@app.command()
def serve(
    port: Annotated[
        int | None, typer.Option(help="Port (0 = any free one); AFINA_LLM_PORT")
    ] = None,
    lora: Annotated[Path | None, typer.Option(help="A LoRA adapter (GGUF) to apply")] = None,
    model: Annotated[
        Path | None, typer.Option(help="A GGUF model; default: bundled SmolLM2")
    ] = None,
    finetunes: Annotated[
        bool, typer.Option(help="Also serve registered local LoRA fine-tunes (second server)")
    ] = True,
    finetune_port: Annotated[
        int | None, typer.Option(help="Port of the fine-tunes' server; AFINA_LLM_FINETUNE_PORT")
    ] = None,
) -> None:
    """Serve a chat model at an OpenAI-compatible URL on one thread until Ctrl+C."""
    settings = get_settings()
    runtime = open_runtime()  # database problems show before the model loads
    try:
        server = llm_server.start(
            port=settings.llm.port if port is None else port,
            model_path=model,
            lora=lora,
            context_tokens=settings.llm.context_tokens,
        )
    except llm_server.ServerError as exc:
        runtime.engine.dispose()
        raise ConfigError(str(exc)) from None
    tuned: list[llm_server.LocalServer] = []
    try:
        _register(runtime, server.base_url, lora is not None)
        console.print(
            f"Serving {server.model!r} at {server.base_url} (1 thread"
            f"{', LoRA ' + str(lora) if lora else ''}). Ctrl+C stops.",
            highlight=False,
        )
        if finetunes and lora is None:
            port = settings.llm.finetune_port if finetune_port is None else finetune_port
            tuned = _serve_finetunes(runtime, port)
        _wait_for_stop()
    finally:
        for extra in tuned:
            extra.close()
        server.close()
        runtime.engine.dispose()
        console.print("Stopped.")


def _serve_finetunes(runtime: Runtime, port: int) -> list[llm_server.LocalServer]:
    """Serve registered local fine-tunes: LoRA adapters (trained on the bundled SmolLM2) on one
    second server, switched per request; each full fine-tune on a server of its own."""
    with runtime.sessions.begin() as session:
        found, problems = serving.local_artefacts(session=session)
    for problem in problems:
        err.print(f"[yellow]Not serving {problem}[/]", highlight=False)
    adapters = [a for a in found if a.kind == "adapter"]
    servers: list[llm_server.LocalServer] = []
    served: dict[str, tuple[str, int | None]] = {}
    context = runtime.settings.llm.context_tokens
    try:
        if adapters:
            paths = [a.path for a in adapters]
            tuned = llm_server.start(port=port, adapters=paths, context_tokens=context)
            servers.append(tuned)
            served |= {a.backend: (tuned.base_url, i) for i, a in enumerate(adapters)}
        for whole in (a for a in found if a.kind == "model_file"):
            own = llm_server.start(port=0, model_path=whole.path, context_tokens=context)
            servers.append(own)
            served[whole.backend] = (own.base_url, None)
    except llm_server.ServerError as exc:
        err.print(f"[yellow]Some fine-tunes are not served: {exc}[/]", highlight=False)
    with runtime.sessions.begin() as session:
        serving.assign(session=session, served=served)
    by_url: dict[str, list[str]] = {}
    for name, (url, _) in served.items():
        by_url.setdefault(url, []).append(name)
    for url, names in by_url.items():
        console.print(f"Serving fine-tunes {', '.join(names)} at {url}.", highlight=False)
    return servers


def _register(runtime: Runtime, base_url: str, lora: bool) -> None:
    """Register the default backends for this server; warn about ones pointing elsewhere."""
    settings = runtime.settings
    with runtime.sessions.begin() as session:
        added = register_llm_defaults(
            session=session, settings=settings, base_url=base_url, lora=lora
        )
        stale = stale_backends(session=session, settings=settings, base_url=base_url)
    for name in added:
        err.print(f"Registered backend {name!r}; `afina backends use {name}` answers with it.")
    for name in stale:
        err.print(
            f"[yellow]Backend {name!r} points at another URL; to use this server: "
            f"afina backends add {name} --kind <its kind> --base-url {base_url}[/]"
        )


def _wait_for_stop() -> None:
    """Block until Ctrl+C (SIGINT) or SIGTERM."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
