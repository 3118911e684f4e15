"""``afina llm serve`` in a real subprocess: it serves, registers the defaults, answers, stops."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SMALL_KB

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def environ(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFINA_")}
    env.update({"AFINA_HOME": str(home), "AFINA_RETRIEVAL_KB_PATH": str(SMALL_KB)})
    return env


def afina(*args: str, home: Path) -> subprocess.CompletedProcess:
    """Run ``afina`` to completion with its own home folder."""
    return subprocess.run(
        [sys.executable, "-m", "chatbot.cli.main", *args],
        capture_output=True,
        text=True,
        env=environ(home),
        cwd=home.parent,
        timeout=300,
    )


def test_llm_serve_registers_defaults_answers_and_stops_cleanly(tmp_path: Path):
    home = tmp_path / "var"
    server = subprocess.Popen(
        [sys.executable, "-m", "chatbot.cli.main", "llm", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=environ(home),
        cwd=tmp_path,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # printed once the server is ready
        url = re.search(r"at (http://127\.0\.0\.1:\d+/v1)", line)
        assert url, line
        listed = afina("backends", "list", home=home)
        assert "local-fewshot" in listed.stdout and "faq" in listed.stdout
        assert afina("backends", "use", "local-fewshot", home=home).returncode == 0
        done = afina("ask", "How much is shipping?", "--json", home=home)
        assert done.returncode == 0, done.stderr
        turn = json.loads(done.stdout)
        assert turn["backend"] == "local-fewshot" and turn["answer"].strip()
    finally:
        server.send_signal(signal.SIGINT)
        out, _ = server.communicate(timeout=30)
    assert server.returncode == 0 and "Stopped." in out


def test_backends_add_refuses_keys_and_names_the_fix(tmp_path: Path):
    home = tmp_path / "var"
    done = afina(
        "backends", "add", "oa", "--kind", "finetuned", "--config", '{"api_key": "sk-x"}', home=home
    )
    assert done.returncode == 1 and "--api-key-env" in done.stderr and "sk-x" not in done.stderr
    done = afina(
        "backends",
        "add",
        "oa",
        "--kind",
        "finetuned",
        "--model",
        "ft:gpt-4o-mini-2024-07-18:shop::abc",
        "--base-url",
        "https://api.openai.com/v1",
        "--api-key-env",
        "OPENAI_API_KEY",
        home=home,
    )
    assert done.returncode == 0, done.stderr
    listed = afina("backends", "list", home=home).stdout
    assert "oa" in listed and "OPENAI_API_KEY" in listed


def test_backends_add_rejects_a_misspelt_option(tmp_path: Path):
    done = afina(
        "backends", "add", "x", "--kind", "fewshot", "--config", '{"modle": "a"}', home=tmp_path
    )
    assert done.returncode == 1 and "modle" in done.stderr and "model" in done.stderr
