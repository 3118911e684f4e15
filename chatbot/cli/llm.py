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
    tuned = None
    try:
        _register(runtime, server.base_url, lora is not None)
        console.print(
            f"Serving {server.model!r} at {server.base_url} (1 thread"
            f"{', LoRA ' + str(lora) if lora else ''}). Ctrl+C stops.",
            highlight=False,
        )
        if finetunes and lora is None:
            port = settings.llm.finetune_port if finetune_port is None else finetune_port
            tuned = _serve_finetunes(runtime, model, port)
        _wait_for_stop()
    finally:
        if tuned is not None:
            tuned.close()
        server.close()
        runtime.engine.dispose()
        console.print("Stopped.")


def _serve_finetunes(
    runtime: Runtime, model: Path | None, port: int
) -> llm_server.LocalServer | None:
    """Start the second server with every registered local LoRA fine-tune, switched per request."""
    with runtime.sessions.begin() as session:
        adapters, problems = serving.local_adapters(session=session)
    for problem in problems:
        err.print(f"[yellow]Not serving {problem}[/]", highlight=False)
    tuned = None
    if adapters:
        try:
            tuned = llm_server.start(
                port=port,
                model_path=model,
                adapters=[a.path for a in adapters],
                context_tokens=runtime.settings.llm.context_tokens,
            )
        except llm_server.ServerError as exc:
            err.print(f"[yellow]Fine-tunes not served: {exc}[/]", highlight=False)
    with runtime.sessions.begin() as session:
        served = adapters if tuned else []
        serving.assign(session=session, served=served, base_url=tuned.base_url if tuned else None)
    if tuned is not None:
        names = ", ".join(a.backend for a in adapters)
        console.print(f"Serving fine-tunes {names} at {tuned.base_url}.", highlight=False)
    return tuned


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
