"""``python -m tests.load``: drive chat sessions against Afina and print figures and targets.

Examples (each bounded by --messages and --max-seconds):
  python -m tests.load --sessions 100 --interval 2 --messages 30           # open loop
  python -m tests.load --sessions 25 --messages 30                         # closed loop
  python -m tests.load --workers 2 --nginx --postgres --sessions 25        # scale-out
  python -m tests.load --workers 2 --nginx --postgres --kill-worker-after 20  # ... one dies
  python -m tests.load --url http://host:8000 --username a --password ...  # a running server
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

from tests.load import driver, figures
from tests.load.dbcheck import check
from tests.load.killer import Kill
from tests.load.servers import Running, running, throwaway_postgres


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m tests.load", description=__doc__.split("\n")[0])
    p.add_argument("--sessions", type=int, default=100)
    p.add_argument("--messages", type=int, default=30, help="per session")
    p.add_argument("--interval", type=float, help="open loop: seconds between a session's messages")
    p.add_argument("--closed", action="store_true", help="also (or only) run closed loop")
    p.add_argument("--max-seconds", type=float, default=300, help="stop sending after this")
    p.add_argument(
        "--repeat", type=int, default=1, help="run each load this often (new sessions each time)"
    )
    p.add_argument("--warmup", type=int, default=5, help="turns before measuring (not counted)")
    p.add_argument("--turn-timeout", type=float, default=60, help="an answer later is lost")
    p.add_argument("--polling", action="store_true", help="start on long-polling, as browsers")
    p.add_argument("--url", help="a running server (default: start one)")
    p.add_argument("--username", help="with --url: the user every session logs in as")
    p.add_argument("--password", default=os.environ.get("AFINA_LOAD_PASSWORD"))
    p.add_argument("--database-url", help="check the stored turns in this database")
    p.add_argument("--postgres", action="store_true", help="own server on a throwaway database")
    p.add_argument("--workers", default="1", help="own server: e.g. 2, or 1,2 to compare")
    p.add_argument("--nginx", action="store_true", help="own server: nginx in front")
    p.add_argument(
        "--kill-worker-after",
        type=float,
        metavar="SECONDS",
        help="own server with --workers 2 or more: SIGKILL one worker this long into each run",
    )
    p.add_argument("--home", type=Path, help="own server's folder (kept; reuses its index)")
    p.add_argument("--kb", help="own server: knowledge base to index (default: the bundled one)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="AFINA_X=VALUE",
        help="own server: a setting (repeatable), e.g. AFINA_PII_DETECT_ON_STORE=false",
    )
    args = p.parse_args(argv)
    if bad := [item for item in args.set if "=" not in item]:
        p.error(f"--set takes NAME=VALUE, not {bad[0]!r}")
    if args.url and not (args.username and args.password):
        p.error("--url needs --username and --password (or AFINA_LOAD_PASSWORD)")
    if args.kill_worker_after is not None and (
        args.url or min(int(w) for w in str(args.workers).split(",")) < 2
    ):
        p.error("--kill-worker-after needs an own server with --workers 2 or more (and --nginx)")
    return args


def plans(args: argparse.Namespace, url: str, users: list[tuple[str, str]]):
    """The runs asked for: open loop when --interval is given, closed loop with --closed or
    when no interval is given."""
    common = dict(
        url=url,
        sessions=args.sessions,
        messages=args.messages,
        max_seconds=args.max_seconds,
        users=users,
        websocket=not args.polling,
        turn_timeout_s=args.turn_timeout,
    )
    if args.interval:
        yield "open", driver.Plan(interval_s=args.interval, **common)
    if args.closed or not args.interval:
        yield "closed", driver.Plan(interval_s=None, **common)


def rounds(args: argparse.Namespace, url: str, users: list[tuple[str, str]]):
    """Each run of ``plans``, ``--repeat`` times, with a label for the round."""
    for run in plans(args, url, users):
        for r in range(args.repeat):
            yield run, (f" (round {r + 1} of {args.repeat})" if args.repeat > 1 else "")


async def measure(
    mode: str,
    plan: driver.Plan,
    pids_of,
    database_url: str | None,
    warmup: int = 0,
    kill: tuple[Running, float] | None = None,
    warm_urls: tuple[str, ...] = (),
):
    """One run: ``warmup`` turns not counted, then drive, sample memory, check the database;
    the figures. ``kill``: (the servers, seconds): SIGKILL a worker that long into the run.
    ``warm_urls``: each worker's own address, so that every worker is warmed up."""
    for url in (warm_urls or (plan.url,)) if warmup else ():  # models load on first use
        warm = dataclasses.replace(plan, url=url, sessions=1, messages=warmup, interval_s=None)
        await driver.run(warm)
    files_before = figures.session_files()
    killer = Kill(kill[1]) if kill else None
    killing: asyncio.Task | None = None

    def started() -> None:
        nonlocal killing
        memory.start_cpu()  # logins not counted
        if kill and killer:
            killing = asyncio.get_running_loop().create_task(killer.run(kill[0]))

    async with figures.MemorySampler(pids_of) as memory:
        outcome = await driver.run(plan, on_start=started)
    if killer is not None and killing is not None:  # the killed worker may still be starting
        if killer.killed_at_s is None:
            killing.cancel()  # the run ended first
        await asyncio.gather(killing, return_exceptions=True)
    summary = figures.summarize(mode, plan.sessions, plan.interval_s, outcome, memory)
    summary.files_written = figures.session_files() - files_before
    if killer is not None:
        summary.killed, summary.worker_back = killer.describe(), killer.back_after_s is not None
    stored = await asyncio.to_thread(check, database_url, outcome.turns) if database_url else None
    return summary, stored


def report(label: str, summary: figures.Figures, stored) -> bool:
    """Print one run's table and verdicts; whether every target was met."""
    print(f"\n== {label} ==")
    print(figures.table(summary, stored))
    verdicts = figures.verdicts(summary, stored)
    for name, met in verdicts:
        print(f"  [{'met' if met else 'NOT met'}] {name}")
    if stored is not None:
        for line in stored.missing[:10]:
            print(f"  ! {line}")
    return all(met for _, met in verdicts)


def listening_pids(url: str) -> list[int]:
    """The process serving ``url`` on this machine and its children (memory figures); none
    when it runs elsewhere or cannot be seen."""
    import psutil

    port = urlsplit(url).port or 80
    try:
        found = [c.pid for c in psutil.net_connections("tcp") if c.laddr.port == port and c.pid]
        process = psutil.Process(found[0])
        return [process.pid, *(c.pid for c in process.children(recursive=True))]
    except (psutil.Error, IndexError):
        return []


def against_url(args: argparse.Namespace) -> bool:
    """Load a server someone else started."""
    ok = True
    users = [(args.username, args.password)]
    pids = listening_pids(args.url)
    for (mode, plan), round_ in rounds(args, args.url.rstrip("/"), users):
        run = measure(mode, plan, lambda: pids, args.database_url, args.warmup)
        summary, stored = asyncio.run(run)
        ok &= report(f"{mode} loop against {args.url}{round_}", summary, stored)
    return ok


def own_servers(args: argparse.Namespace) -> bool:
    """Start the server (per --workers choice), load it, stop it."""
    ok = True
    env = {"AFINA_RETRIEVAL_KB_PATH": args.kb} if args.kb else {}
    env.update(item.split("=", 1) for item in args.set)
    for workers in (int(w) for w in str(args.workers).split(",")):
        folder_cm = nullcontext(str(args.home)) if args.home else tempfile.TemporaryDirectory()
        with folder_cm as name, throwaway_postgres() if args.postgres else nullcontext() as pg:
            folder = Path(name)
            folder.mkdir(parents=True, exist_ok=True)
            database_url = pg or args.database_url or f"sqlite:///{folder / 'var' / 'afina.db'}"
            with running(
                folder,
                database_url,
                workers=workers,
                nginx=args.nginx,
                users=args.sessions,
                env=env,
            ) as (server, users):
                for (mode, plan), round_ in rounds(args, server.url, users):
                    kill = (server, args.kill_worker_after) if args.kill_worker_after else None
                    each = tuple(f"http://127.0.0.1:{p}" for p in server.worker_ports)
                    run = measure(mode, plan, server.pids, database_url, args.warmup, kill, each)
                    summary, stored = asyncio.run(run)
                    where = f"{workers} worker(s){' behind nginx' if args.nginx else ''}"
                    label = f"{mode} loop, {where}, {make_url(database_url).get_backend_name()}"
                    ok &= report(label + round_, summary, stored)
    return ok


def main(argv: list[str] | None = None) -> int:
    """Run; exit 0 when every target was met, 1 otherwise."""
    args = arguments(argv)
    print(
        f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, CPUs: "
        f"{os.cpu_count()} (figures on a shared machine are noisy)"
    )
    ok = against_url(args) if args.url else own_servers(args)
    print("\nall targets met" if ok else "\nsome targets NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
