"""Start what the load test runs against: ``afina serve`` (one process or ``--workers N``)
in its own AFINA_HOME, users to log in as, and optionally nginx in front (sticky sessions)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from chatbot.db import store
from chatbot.passwords import hash_password
from chatbot.runtime import Runtime
from chatbot.settings import DatabaseSettings, Settings

ROOT = Path(__file__).resolve().parents[2]
POSTGRES = os.environ.get(
    "AFINA_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
PASSWORD = "load-test-password"
# Chainlit changes behaviour on these (CI=true fakes OPENAI_API_KEY, DATABASE_URL switches its
# data layer): a spawned server must not see them.
TRAPS = ("CI", "DEBUG", "WATCH", "HEADLESS", "NO_CACHE", "DATABASE_URL")
NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
{sticky}
    upstream afina_workers {{
        hash $afina_sticky consistent;
{servers}
        keepalive 64;
    }}
    map $http_upgrade $connection_upgrade {{ default upgrade; "" close; }}
    server {{
        listen 127.0.0.1:{port};
{locations}
    }}
}}
"""


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """An empty PostgreSQL database (on AFINA_TEST_POSTGRES's server), dropped afterwards."""
    admin_url = make_url(POSTGRES)
    name = f"afina_load_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
        admin.dispose()


def free_port(count: int = 1) -> int:
    """The first of ``count`` consecutive TCP ports nobody listens on right now."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            first = sock.getsockname()[1]
        if first + count < 65000 and all(_free(first + i) for i in range(count)):
            return first
    raise RuntimeError("no free consecutive ports")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def deploy_snippets() -> tuple[str, str]:
    """The sticky-session maps and the locations of deploy/nginx.conf (one source of truth)."""
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    sticky = text.split("# BEGIN sticky", 1)[1].split("# END sticky", 1)[0]
    locations = text.split("# BEGIN locations", 1)[1].split("# END locations", 1)[0]
    return sticky.rstrip(), locations.rstrip()


@dataclass
class Running:
    """A server (or workers behind nginx) and how to reach its database and processes."""

    url: str
    database_url: str
    home: Path
    process: subprocess.Popen
    worker_ports: list[int]
    nginx: subprocess.Popen | None = None

    def pids(self) -> list[int]:
        """The server's processes: the parent and every worker (for memory figures)."""
        import psutil

        try:
            parent = psutil.Process(self.process.pid)
            return [parent.pid, *(c.pid for c in parent.children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    def worker_pid(self, port: int) -> int | None:
        """The process listening on ``port`` (a worker of ``--workers``)."""
        import psutil

        for pid in self.pids():
            try:
                process = psutil.Process(pid)
                if any(c.laddr.port == port for c in process.net_connections("tcp")):
                    return pid
            except psutil.Error:
                continue
        return None


def server_env(home: Path, database_url: str, extra: dict[str, str] | None = None) -> dict:
    """The environment of a spawned server: no AFINA_/CHAINLIT_ settings of the caller."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AFINA_", "CHAINLIT_")) and k not in TRAPS
    }
    env.update(
        AFINA_HOME=str(home),
        AFINA_DATABASE_URL=database_url,
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
    )
    return {**env, **(extra or {})}


def add_users(settings: Settings, count: int, prefix: str = "load") -> list[tuple[str, str]]:
    """Agents ``load-000``... (created as ``afina users add`` does); existing ones are kept."""
    runtime = Runtime.open(settings)
    names = [f"{prefix}-{i:03d}" for i in range(count)]
    try:
        with runtime.sessions.begin() as session:
            digest = hash_password(PASSWORD)  # one hash for all: Argon2 is slow on purpose
            for name in names:
                if store.get_user(session=session, username=name) is None:
                    store.add_user(session=session, username=name, password_hash=digest)
    finally:
        runtime.engine.dispose()
    return [(name, PASSWORD) for name in names]


def wait_ready(url: str, process: subprocess.Popen, log: Path, timeout: float = 600) -> None:
    """Until ``url``/healthz answers 200; fails with the log's end when the server exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready in {timeout:.0f} s:\n{_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:] if log.exists() else "(no log)"


def start_nginx(folder: Path, ports: list[int]) -> tuple[subprocess.Popen, str]:
    """nginx in the foreground with its own files under ``folder``, in front of ``ports``."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise RuntimeError("nginx is not installed: apt-get install -y nginx (.ci/run does)")
    folder.mkdir(parents=True, exist_ok=True)
    sticky, locations = deploy_snippets()
    port = free_port()
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in ports)
    conf = folder / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            folder=folder, port=port, servers=servers, sticky=sticky, locations=locations
        )
    )
    log = folder / "nginx-error.log"
    process = subprocess.Popen(
        [binary, "-c", str(conf), "-p", str(folder), "-e", str(log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, process, log, timeout=30)
    return process, url


@contextmanager
def running(
    folder: Path,
    database_url: str,
    *,
    workers: int = 1,
    nginx: bool = False,
    users: int = 0,
    env: dict[str, str] | None = None,
    serve_args: tuple[str, ...] = (),
) -> Iterator[tuple[Running, list[tuple[str, str]]]]:
    """``afina serve`` (``--workers N``) in ``folder``/var, users made, nginx when asked;
    ``serve_args`` go to ``afina serve`` as they are."""
    home = folder / "var"
    settings = Settings(home=home, database=DatabaseSettings(url=database_url))
    made = add_users(settings, users) if users else []
    port = free_port(workers)
    log = folder / "serve.log"
    command = [sys.executable, "-m", "chatbot.cli.main", "serve", "--port", str(port)]
    if workers > 1:
        command += ["--workers", str(workers)]
    command += serve_args
    with log.open("a") as out:
        process = subprocess.Popen(
            command,
            env=server_env(home, database_url, env),
            cwd=folder,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    ports = list(range(port, port + workers))
    proxy = None
    try:
        for p in ports:
            wait_ready(f"http://127.0.0.1:{p}", process, log)
        url = f"http://127.0.0.1:{ports[0]}"
        if nginx:
            proxy, url = start_nginx(folder / "nginx", ports)
        yield Running(url, database_url, home, process, ports, proxy), made
    finally:
        if proxy is not None:
            proxy.send_signal(signal.SIGQUIT)
            _stop(proxy)
        process.terminate()
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
