"""`tongxin`: run the whole system, migrate databases, load the demo."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console

from shared.settings import Settings
from shared.subjects import Names
from tongxin.keys import auth_headers
from tongxin.natsserver import NatsServer, port_open, remembered_port
from tongxin.supervisor import SERVICES, Supervisor, service_of

STATUS_TIMEOUT = 0.8  # tongxin.status.TIMEOUT, without importing it for every command
NATS_PORT_FILE = "nats-port"  # in the data dir: the embedded NATS server's port, kept

app = typer.Typer(help="Tongxin (同心): pairing-based community service programmes.",
                  no_args_is_help=True)
# soft_wrap: never break lines at the console width, so paths and URLs stay whole when the output
# goes to a pipe or a log file (rich wraps at 80 columns there).
console = Console(soft_wrap=True)


@app.callback()
def _interruptible() -> None:
    """Ctrl-C (SIGINT) stops every command, `up` and `status --watch` included, even when a
    shell started it in the background and so handed it SIGINT ignored (Python then keeps it
    ignored): an operator's, or a supervisor's, interrupt must always be heard."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@app.command()
def up(data_dir: Path = typer.Option(Path("var"), envvar="TONGXIN_DATA_DIR",
                                     help="where databases, the NATS store and logs live"),
       load_demo: bool = typer.Option(True, "--demo/--no-demo",
                                      help="load the demo programme into an empty data dir"),
       nats_cluster: int = typer.Option(
           0, "--nats-cluster", min=0, max=9,
           help="start this many nats-servers as one JetStream cluster (streams replicated "
                "on up to 3 of them) instead of one"),
       replicas: int = typer.Option(1, "--replicas", min=1, max=9,
                                    help="instances of each service (more than 1: PostgreSQL)"),
       postgres: str | None = typer.Option(
           None, "--postgres", envvar="TONGXIN_POSTGRES_URL",
           help="a PostgreSQL server: the services' databases are <name>_registry, "
                "<name>_events and <name>_reporting on it (<name>: the URL's database, "
                "default tongxin), created if missing; migrated once, then the services start"),
       ) -> None:
    """Start NATS (unless TONGXIN_NATS_URL names one) and the three services; Ctrl-C stops all.

    `tongxin up --nats-cluster 3 --replicas 2 --postgres postgresql://…` starts the topology of
    deploy/docker-compose.yml on loopback: three nats-servers as a JetStream cluster, streams
    with three replicas, two instances of each service, each started as compose starts it."""
    from tongxin import credentials, databases, demo, natsauth
    from tongxin.natsserver import NatsCluster, free_port

    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    nats_url = os.environ.get("TONGXIN_NATS_URL")
    if nats_url and nats_cluster:
        console.print("[red]--nats-cluster starts a cluster of its own:[/] unset "
                      "TONGXIN_NATS_URL, or leave --nats-cluster out to use that server.")
        raise typer.Exit(2)
    db_urls: dict[str, str] = {}
    if postgres:
        try:
            db_urls = databases.service_urls(postgres)
        except ValueError as exc:
            console.print(f"[red]--postgres: {exc}[/]", highlight=False)
            raise typer.Exit(2) from None
    elif replicas > 1 and not all(os.environ.get(f"TONGXIN_{s.upper()}_DATABASE_URL")
                                  for s in SERVICES):
        console.print("[red]--replicas: instances of a service share its database, which "
                      "must be PostgreSQL:[/] give --postgres URL (or TONGXIN_POSTGRES_URL).")
        raise typer.Exit(2)
    settings = Settings(data_dir=data_dir).model_copy(
        update={f"{s}_database_url": u for s, u in db_urls.items()})
    # Instance 1 of a service on its port (TONGXIN_<SERVICE>_PORT), instance n 10(n-1) above.
    names = [s if n == 1 else f"{s}-{n}" for n in range(1, replicas + 1) for s in SERVICES]
    ports = {s: getattr(settings, f"{s}_port") for s in SERVICES}
    busy = [f"{s} ({p})" for s, p in ports.items() if port_open(p)]
    if busy:
        console.print(f"[red]Port in use: {', '.join(busy)}.[/] Stop what holds it, or set "
                      "TONGXIN_REGISTRY_PORT / TONGXIN_EVENTS_PORT / TONGXIN_REPORTING_PORT.")
        raise typer.Exit(2)
    for name in names[len(SERVICES):]:
        service, _, n = name.rpartition("-")
        port = ports[service] + 10 * (int(n) - 1)
        ports[name] = port if not port_open(port) else free_port()

    nats: NatsServer | None = None
    cluster: NatsCluster | None = None
    own_urls: dict[str, str] = {}  # each service's (and the demo publisher's) user, if ours
    env = {"TONGXIN_DATA_DIR": str(data_dir)}
    if not nats_url:
        # Users with subject permissions: each service publishes only what it owns.
        passwords = natsauth.passwords(data_dir / "nats-users.json")
        config = natsauth.write_config(data_dir / "nats-auth.conf", passwords,
                                       Names(settings.namespace))
        (data_dir / "logs").mkdir(exist_ok=True)
        if nats_cluster:
            cluster = NatsCluster(data_dir, nats_cluster, auth=config,
                                  log_dir=data_dir / "logs").start()
            nats_url = cluster.url
            # As compose: every stream on three nodes (all of them, in a smaller cluster).
            env["TONGXIN_STREAM_REPLICAS"] = str(min(3, nats_cluster))
            console.print(f"NATS JetStream cluster of {nats_cluster} on {nats_url} (stores "
                          f"{data_dir}/nats-<n>, logs {data_dir / 'logs'}/nats-<n>.log; "
                          f"streams with {env['TONGXIN_STREAM_REPLICAS']} replicas; users "
                          f"and permissions in {config})", highlight=False)
        else:
            # The same port as last time (kept in the data dir), so the printed URLs still work.
            port, taken = remembered_port(data_dir / NATS_PORT_FILE)
            if taken:
                console.print(f"[yellow]NATS's port {taken} (from {data_dir / NATS_PORT_FILE})"
                              f" is in use: NATS is on {port} from now on.[/] The "
                              "TONGXIN_PUBLISHER_URL printed below replaces the one printed "
                              "before.", highlight=False)
            nats = NatsServer(data_dir / "nats", port=port,
                              log_file=data_dir / "logs" / "nats.log", config=config)
            nats.start()
            nats_url = nats.url
            console.print(f"NATS with JetStream on {nats_url} (store {data_dir / 'nats'}; "
                          f"users and permissions in {config})")
        own_urls = {u: natsauth.url_for(nats_url, u, passwords)
                    for u in (*SERVICES, natsauth.PUBLISHER)}
        operator_url = natsauth.url_for(nats_url, natsauth.OPERATOR, passwords)
    else:
        console.print(f"Using NATS at {nats_url}")
        operator_url = nats_url
    env["TONGXIN_NATS_URL"] = nats_url
    # The operator's step, before any service starts: the services may not declare streams.
    try:
        declare_streams(operator_url, settings.model_copy(update={"stream_replicas": int(
            env.get("TONGXIN_STREAM_REPLICAS", settings.stream_replicas))}))
    except Exception as exc:
        console.print(f"[red]Could not declare the streams:[/] {exc!r}", highlight=False)
        if nats:
            nats.stop()
        if cluster:
            cluster.stop()
        raise typer.Exit(1) from None

    sup = Supervisor(env=env, ports=ports, log_dir=data_dir / "logs")

    def _terminate(*_):
        raise KeyboardInterrupt  # SIGTERM stops us the way Ctrl-C does

    signal.signal(signal.SIGTERM, _terminate)
    code = 0
    try:
        if db_urls:
            with console.status("PostgreSQL: databases and migrations…"):
                created = asyncio.run(databases.ensure_databases(db_urls))
                # Once, before any service, as compose's `migrate` service does.
                db_env = {f"TONGXIN_{s.upper()}_DATABASE_URL": u for s, u in db_urls.items()}
                # (--no-streams: declared above, as the operator.)
                migrated = subprocess.run([sys.executable, "-m", "tongxin.cli", "migrate",
                                           "--no-streams"],
                                          env={**os.environ, **env, **db_env},
                                          capture_output=True, text=True)
                if migrated.returncode:
                    raise RuntimeError(f"tongxin migrate failed:\n{migrated.stdout}"
                                       f"{migrated.stderr}")
            env.update(db_env, TONGXIN_MIGRATE_ON_START="false")
            console.print("PostgreSQL databases "
                          f"{', '.join(databases.display(u) for u in db_urls.values())}"
                          f"{' (created now)' if created else ''}; migrated", highlight=False)
        with console.status(f"starting {', '.join(names)}…"):
            for name in names:
                own = own_urls.get(service_of(name))
                sup.start(name, {"TONGXIN_NATS_URL": own} if own else None)
            sup.wait_healthy(names, timeout=120)
        urls = {name: sup.children[name].url for name in names}
        creds = credentials.ensure(data_dir, settings, urls)
        admin = {"Authorization": f"Bearer {creds.key}"}
        fresh = httpx.get(f"{urls['registry']}/v1/organizations", headers=admin,
                          params={"limit": 1}).json()["total"] == 0
        if fresh and load_demo:
            with console.status("loading the demo: the five seed programmes…"):
                seq = demo.load(urls["registry"], urls["events"], creds.key)
                # The reports show the whole demo before the URLs are printed. A wait is a few
                # seconds at most (then 503): a thousand events may take a little longer.
                deadline = time.monotonic() + 60
                while httpx.get(f"{urls['reporting']}/v1/reports/summary", headers=admin,
                                params={"min_seq": seq}, timeout=30).status_code == 503 \
                        and time.monotonic() < deadline:
                    pass
            console.print("Demo programme loaded: Zibo 2013, Zhenjiang 2021, Chizhou 2022, "
                          "Jinan 2019, Shangyu 2010 (the seed articles).")
        # An outside system's credentials (offers only), to copy into a shell.
        publisher = (f"\nOffer events on {Names(settings.namespace).ingest('<type>')} as:\n"
                     f"TONGXIN_PUBLISHER_URL={own_urls[natsauth.PUBLISHER]}" if own_urls else "")
        more = "".join(f"\n  {name:<19} {url}" for name, url in urls.items()
                       if name not in SERVICES)
        if more:
            more = ("\nMore instances (the same services, the same data; put a load balancer "
                    f"in front of them):{more}")
        console.print(f"""
[bold]Tongxin is running.[/] Open:
  Dashboard           {urls['reporting']}/
  Forms (units)       {urls['events']}/forms/
  Summary (JSON)      {urls['reporting']}/v1/reports/summary?group_by=organization
  Log in              {urls['registry']}/login
  Registry API docs   {urls['registry']}/docs
  Events API docs     {urls['events']}/docs
  Events AsyncAPI     {urls['events']}/asyncapi
  Reporting API docs  {urls['reporting']}/docs{more}
Log in as [bold]{creds.username}[/] with password [bold]{creds.password}[/] (demo admin;
kept in {data_dir / credentials.FILE}). For scripts and the CLI, an admin key:""",
                      soft_wrap=True, highlight=False)
        # Each on a line of its own, nothing else on it: copied as is into a shell.
        print(f"TONGXIN_TOKEN={creds.key}{publisher}", flush=True)
        console.print(f"Logs in {data_dir / 'logs'}. Ctrl-C stops everything.", highlight=False)
        while True:
            # A crashed service is started again (one crash is not an outage) and said so.
            for crash in sup.supervise():
                where = f"Last lines of {crash.log_path}:" if crash.log_path else ""
                console.print(f"[yellow]{crash}.[/] {where}", highlight=False)
                # A log is text, not rich markup: "[/v1/events]" in it must not raise.
                console.print(crash.tail(), markup=False, highlight=False)
            if cluster:
                # One node lost is what a cluster is for: said, and started again (its store
                # and port kept); it catches up from the others.
                for node in cluster.stopped():
                    assert node.proc is not None  # stopped() lists started nodes only
                    console.print(f"[yellow]nats-server on {node.url} stopped unexpectedly "
                                  f"(exit code {node.proc.returncode}); starting it again.[/]"
                                  " Last lines of its log:", highlight=False)
                    if node.log_file:
                        console.print(_tail(node.log_file), markup=False, highlight=False)
                    node.start()
            if nats and nats.proc and nats.proc.poll() is not None:
                # Without NATS nothing works; the services' own retries cannot help.
                console.print(f"[red]nats-server stopped unexpectedly (exit code "
                              f"{nats.proc.returncode}).[/] Last lines of "
                              f"{data_dir / 'logs' / 'nats.log'}:", highlight=False)
                console.print(_tail(data_dir / "logs" / "nats.log"), markup=False,
                              highlight=False)
                code = 1
                break
            time.sleep(0.5)
    except KeyboardInterrupt:  # Ctrl-C, at any point: starting, loading the demo or running
        pass
    except Exception as exc:
        console.print(str(exc), style="red", markup=False, highlight=False)
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut cleanup short
        console.print("stopping…")
        sup.stop_all()
        if nats:
            nats.stop()
        if cluster:
            cluster.stop()
    raise typer.Exit(code)


@app.command()
def status(
    registry: str | None = typer.Option(None, "--registry", envvar="TONGXIN_REGISTRY_URL",
                                        help="the registry (default: http://TONGXIN_HOST:"
                                             "TONGXIN_REGISTRY_PORT)"),
    events: str | None = typer.Option(None, "--events", envvar="TONGXIN_EVENTS_URL",
                                      help="the events service (default: from TONGXIN_HOST "
                                           "and TONGXIN_EVENTS_PORT)"),
    reporting: str | None = typer.Option(None, "--reporting", envvar="TONGXIN_REPORTING_URL",
                                         help="the reporting service (default: from "
                                              "TONGXIN_HOST and TONGXIN_REPORTING_PORT)"),
    watch: bool = typer.Option(False, "--watch", help="read again every --every seconds until "
                               "Ctrl-C (in place on a terminal; one reading after another on a "
                               "pipe, and with --json one JSON line each)"),
    every: float = typer.Option(1.0, "--every", min=0.1, help="seconds between readings"),
    timeout: float = typer.Option(STATUS_TIMEOUT, "--timeout", min=0.1,
                                  help="seconds each service has to answer (its /health and "
                                       "/metrics, asked at once); slower counts as down"),
    as_json: bool = typer.Option(False, "--json", help="print the figures as JSON"),
) -> None:
    """Health, consumer lag, parked messages, outbox backlogs, the DLQ and notifications
    sent, from each service's /health and /metrics (no key needed).

    Lag is what a consumer has yet to apply of its stream: after a burst it climbs, then
    falls back to 0. Exit code 1 if a service is down or degraded (with --watch: at the last
    reading)."""
    import json

    from rich.console import Group
    from rich.live import Live
    from rich.text import Text

    from tongxin.status import problems, read_all, summary, table

    settings = Settings()
    urls = {s: _url(u, settings, s) for s, u in (("registry", registry), ("events", events),
                                                 ("reporting", reporting))}

    def reading():
        statuses = asyncio.run(read_all(urls, timeout))
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        return statuses, Group(table(statuses, title=f"Tongxin status at {stamp}"),
                               *(Text(p, style="red") for p in problems(statuses)),
                               Text(summary(statuses)))

    def show(statuses, shown) -> None:
        if as_json:
            print(json.dumps([s.as_json() for s in statuses], ensure_ascii=False), flush=True)
        else:
            console.print(shown, highlight=False)

    statuses, shown = reading()
    try:
        if watch and console.is_terminal and not as_json:
            with Live(shown, console=console, auto_refresh=False) as live:
                while True:
                    time.sleep(every)
                    statuses, shown = reading()
                    live.update(shown, refresh=True)
        else:
            show(statuses, shown)
            while watch:  # to a pipe or a file: each reading after the last, as a log
                time.sleep(every)
                statuses, shown = reading()
                show(statuses, shown)
    except KeyboardInterrupt:
        pass
    raise typer.Exit(0 if all(s.up for s in statuses) else 1)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@app.command()
def migrate(streams: bool = typer.Option(
        True, "--streams/--no-streams",
        help="also declare the NATS streams and buckets (as `tongxin bus streams`)")) -> None:
    """Bring every service's database to the newest schema (what services do on start), and
    declare the streams (what services may not do)."""
    from shared.db import migrate as run

    settings = Settings()
    for service in SERVICES:
        asyncio.run(run(service, settings.database_url(service), settings.db_schema))
        console.print(f"{service}: migrated")
    if streams:
        declare_streams(settings.nats_url, settings)
        console.print("streams: declared")


def declare_streams(url: str, settings: Settings, within: float = 60.0) -> None:
    """Every stream and bucket created or brought to its declaration (`shared.streams.declare`)
    on the NATS at `url`, as its user (the operator's: no service may). NATS may still be
    starting, or a cluster electing its leaders: tried again for up to `within` seconds. A
    refusal by the server (not the operator's user) fails at once."""
    import nats

    from shared.streams import declare

    async def run() -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc))

        while True:
            try:
                # a cluster: "nats://a,nats://b", each with the user's credentials
                servers = [u.strip() for u in url.split(",") if u.strip()]
                nc = await nats.connect(servers, connect_timeout=5, allow_reconnect=False,
                                        max_reconnect_attempts=0, error_cb=on_error)
                try:
                    await declare(nc.jetstream(timeout=10), Names(settings.namespace),
                                  settings.stream_replicas, settings.duplicate_window,
                                  settings.session_hours)
                    return
                finally:
                    await nc.close()
            except Exception:
                refused = [e for e in errors if "permissions violation" in e.lower()]
                if refused:
                    raise PermissionError(f"NATS refused: {refused[0]}") from None
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(1)

    asyncio.run(run())


REGISTRY_HELP = "the registry (default: http://TONGXIN_HOST:TONGXIN_REGISTRY_PORT)"
EVENTS_HELP = "the events service (default: http://TONGXIN_HOST:TONGXIN_EVENTS_PORT)"


def _url(given: str | None, settings: Settings, service: str) -> str:
    """The URL given (an option or TONGXIN_<SERVICE>_URL), else the local service's."""
    return (given or settings.local_url(service)).rstrip("/")


@app.command("demo")
def load_demo_cmd(registry: str | None = typer.Option(None, "--registry",
                                                      envvar="TONGXIN_REGISTRY_URL",
                                                      help=REGISTRY_HELP),
                  events: str | None = typer.Option(None, "--events",
                                                    envvar="TONGXIN_EVENTS_URL",
                                                    help=EVENTS_HELP)) -> None:
    """Load the demo programme into a running system (idempotent; an admin's TONGXIN_TOKEN)."""
    from tongxin import demo

    settings = Settings()
    seq = demo.load(_url(registry, settings, "registry"), _url(events, settings, "events"))
    console.print(f"demo loaded; last event seq {seq}")


@app.command("import")
def import_cmd(file: Path = typer.Argument(..., exists=True, dir_okay=False,
                                           help="CSV or XLSX, one row a record"),
               to: str | None = typer.Option(None, "--to", help="regions, organizations, "
                                             "bases, teams, volunteers or pairings (default: "
                                             "from the file name, e.g. 单位.xlsx)"),
               registry: str | None = typer.Option(None, "--registry",
                                                   envvar="TONGXIN_REGISTRY_URL",
                                                   help=REGISTRY_HELP)) -> None:
    """Import a register: every row checked here first, then the registry imports all or none.

    Exit code 1 if any row was refused (each listed), 2 if the registry cannot be reached or
    refused the import as a whole."""
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from services.registry.domain import ENTITIES
    from services.registry.imports import check_file, collection_for

    collection = to or collection_for(file.name)
    if collection not in ENTITIES:
        console.print(f"[red]Which register is {file.name}?[/] Say --to "
                      f"{'|'.join(ENTITIES)}.")
        raise typer.Exit(2)
    registry = _url(registry, Settings(), "registry")
    content = file.read_bytes()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(f"checking {file.name}", total=None)
        _, valid, errors = check_file(ENTITIES[collection], content, file.name,
                                      lambda _stage, done, total: bar.update(
                                          task, completed=done, total=total))
        if not errors:
            bar.update(task, description=f"importing {len(valid)} {collection}")
            try:
                r = httpx.post(f"{registry}/v1/import/{collection}", timeout=600,
                               files={"file": (file.name, content)}, headers=auth_headers())
            except httpx.TransportError as exc:
                bar.stop()
                console.print(f"[red]Cannot reach the registry at {registry}[/] "
                              f"({_unreachable(exc)}). Is it running (`tongxin up`)? Give its "
                              "address with --registry or TONGXIN_REGISTRY_URL, or its port "
                              "with TONGXIN_REGISTRY_PORT.", highlight=False)
                raise typer.Exit(2) from None
            if r.status_code in (409, 422):
                errors = r.json()["errors"]
            elif r.status_code != 200:
                bar.stop()
                hint = (" Set TONGXIN_TOKEN to an admin's or organiser's key (`tongxin up` "
                        "prints one)." if r.status_code in (401, 403) else "")
                console.print(f"[red]The registry refused the import ({r.status_code}):[/] "
                              f"{escape(_message(r))}{hint}", highlight=False)
                raise typer.Exit(2)
    if errors:
        _print_errors(errors)
        raise typer.Exit(1)
    result = r.json()
    console.print(f"[green]{result['imported']} {collection} imported:[/] "
                  f"{result['created']} new, {result['updated']} changed, "
                  f"{result['unchanged']} unchanged.")


def _unreachable(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "nothing answers there"
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time"
    return str(exc) or type(exc).__name__


@app.command("load")
def load_cmd(file: str = typer.Argument(..., metavar="FILE.ndjson",
                                        help="NDJSON, one event envelope a line; - for "
                                             "standard input"),
             url: str | None = typer.Option(None, "--url", envvar="TONGXIN_EVENTS_URL",
                                            help="the events service (default: "
                                                 "http://TONGXIN_HOST:TONGXIN_EVENTS_PORT)"),
             show: int = typer.Option(20, "--show-errors", min=0,
                                      help="how many refused lines to list"),
             as_json: bool = typer.Option(False, "--json",
                                          help="print the service's answer as JSON (for "
                                               "scripts; the progress bar goes to stderr)"),
             ) -> None:
    """Load history: stream an NDJSON file to the events service (POST /v1/events/bulk).

    Each line is checked like any event: good lines are kept, bad ones listed by number.

    Idempotent on event_id: the same file sent again accepts nothing twice.

    Exit code 1 if any line was refused, 2 if the service cannot be reached."""
    import json
    import sys

    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )

    from tongxin.load import Failed, Unreachable, default_url, send

    url = url or default_url()
    if file == "-":
        stream, name, total = sys.stdin.buffer, "standard input", None
    else:
        path = Path(file)
        if not path.is_file():
            console.print(f"[red]No such file:[/] {escape(file)}", highlight=False)
            raise typer.Exit(2)
        stream, name, total = path.open("rb"), path.name, path.stat().st_size
    out = Console(stderr=True, soft_wrap=True) if as_json else console
    t0 = time.perf_counter()
    try:
        with stream, Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                              TransferSpeedColumn(), TimeElapsedColumn(), console=out) as bar:
            task = bar.add_task(f"sending {name}", total=total)
            result = send(stream, url, sent=lambda n: bar.advance(task, n),
                          finished=lambda: bar.update(
                              task, total=bar.tasks[0].completed,
                              description="sent; the events service is finishing"))
    except Unreachable as exc:
        out.print(f"[red]{escape(str(exc))}.[/] Is it running (`tongxin up`)? Give its "
                  "address with --url or TONGXIN_EVENTS_URL.", highlight=False)
        raise typer.Exit(2) from None
    except Failed as exc:
        out.print(f"[red]{escape(str(exc))}.[/] Lines accepted before this stay accepted; "
                  "sending the file again is safe (each event_id counts once).",
                  highlight=False)
        raise typer.Exit(2) from None
    took = time.perf_counter() - t0
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        _print_loaded(result, name, took, show)
    raise typer.Exit(1 if result["refused"] else 0)


def _print_loaded(result: dict, name: str, took: float, show: int) -> None:
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    lines = result.get("lines", 0)
    style = "red" if result["refused"] else "green"
    console.print(f"[{style}]{escape(name)}: {lines:,} lines in {took:.1f}s "
                  f"({lines / took if took else 0:,.0f}/s):[/] {result['accepted']:,} accepted, "
                  f"{result['duplicates']:,} duplicates (sent before), "
                  f"{result['refused']:,} refused.", highlight=False)
    errors = result.get("errors") or []
    if not errors or not show:
        return
    listed = errors[:show]
    more = len(errors) > show or result.get("errors_truncated")
    table = Table(title=f"Refused lines (the first {len(listed)} problems)" if more
              else "Refused lines", title_justify="left")
    for col in ("line", "field", "message"):
        table.add_column(col, overflow="fold")
    for e in listed:
        table.add_row(str(e["line"]), Text(e["field"]), Text(e["message"]))
    console.print(table)
    if more:
        console.print(f"…{result['refused']:,} lines refused in all; --show-errors N or --json "
                      "lists more.", highlight=False)


def _message(r: httpx.Response) -> str:
    try:
        return "; ".join(e["message"] for e in r.json()["errors"])
    except (ValueError, KeyError, TypeError):
        return r.text[:200]


def _print_errors(errors) -> None:
    from rich.table import Table

    rows = [e if isinstance(e, dict) else e.__dict__ for e in errors]
    table = Table(title=f"{len(rows)} problems; nothing was imported")
    for col in ("row", "column", "message"):
        table.add_column(col)
    for e in rows:
        table.add_row(str(e["row"] or ""), e["column"], e["message"])
    console.print(table)


bus_app = typer.Typer(help="The NATS bus: users and what each may publish.",
                      no_args_is_help=True)
app.add_typer(bus_app, name="bus")


@bus_app.command("config")
def bus_config(
    out: Path = typer.Option(Path("deploy/nats"), "--out",
                             help="where to write auth.conf and the <user>.env files"),
    servers: str = typer.Option("nats://nats1:4222,nats://nats2:4222,nats://nats3:4222",
                                "--servers", help="the NATS URLs clients connect to"),
) -> None:
    """Write the NATS users of a deployment (deploy/docker-compose.yml): auth.conf, the users
    and their subject permissions, which cluster.conf includes; and <user>.env, the user's
    TONGXIN_NATS_URL (TONGXIN_PUBLISHER_URL for an outside system) with its password. The
    passwords are made once and kept in users.json: run it again after a change of
    permissions. For TONGXIN_NAMESPACE (none in production). Files readable by owner only."""
    from tongxin import natsauth

    passwords = natsauth.passwords(out / "users.json")
    natsauth.write_config(out / "auth.conf", passwords, Names(Settings().namespace))
    for user in natsauth.USERS:
        name = "TONGXIN_PUBLISHER_URL" if user == natsauth.PUBLISHER else "TONGXIN_NATS_URL"
        natsauth.write_private(out / f"{user}.env",
                               f"{name}={natsauth.url_for(servers, user, passwords)}\n")
    console.print(f"Wrote {out / 'auth.conf'} and {', '.join(f'{u}.env' for u in natsauth.USERS)}"
                  f" (passwords kept in {out / 'users.json'}).", highlight=False)


@bus_app.command("streams")
def bus_streams() -> None:
    """Declare every stream and key-value bucket (the operator's step, before the services
    start: their NATS users may not create, change or delete a stream; each waits at start
    until what it needs is there). Connects with TONGXIN_NATS_URL, which must carry the
    operator's user (deploy/nats/operator.env). Run it again after an upgrade."""
    settings = Settings()
    declare_streams(settings.nats_url, settings)
    where = f" (namespace {settings.namespace})" if settings.namespace else ""
    console.print(f"Streams declared{where}.", highlight=False)


reporting_app = typer.Typer(help="The reporting service's read models.", no_args_is_help=True)
app.add_typer(reporting_app, name="reporting")


@reporting_app.command("rebuild")
def reporting_rebuild(
    models: list[str] | None = typer.Argument(None, metavar="[MODEL ...]",
                                              help="read models to rebuild (default: all)"),
    check: bool = typer.Option(False, "--check", help="compare with the live tables; swap "
                               "nothing (exit code 1 if any differ)"),
    list_models: bool = typer.Option(False, "--list", help="list the read models"),
) -> None:
    """Replay the streams into fresh tables and swap them in while the service runs.

    Reads TONGXIN_NATS_URL, TONGXIN_NAMESPACE, TONGXIN_REPORTING_DATABASE_URL (or
    TONGXIN_DATA_DIR), TONGXIN_DB_SCHEMA, as the reporting service does."""
    import logging

    from rich.logging import RichHandler
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from services.reporting.rebuild import choose, rebuild, rebuildable

    if list_models:
        for model in rebuildable():
            console.print(f"{model.name}  [dim]({model.stream}) {model.description}[/]",
                          highlight=False)
        return
    try:
        choose(models)
    except ValueError as exc:
        console.print(f"[red]{exc}[/]", highlight=False)
        raise typer.Exit(2) from None
    logging.basicConfig(level=logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=console, show_path=False)])
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as bar:
        tasks: dict[str, Any] = {}

        def progress(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done, total=total)

        try:
            result = asyncio.run(rebuild(Settings(), models, check=check, progress=progress))
        except OSError as exc:  # NATS or the database cannot be reached
            console.print(f"[red]{exc}[/]", markup=False, highlight=False)
            raise typer.Exit(2) from None
    _print_rebuild(result)
    raise typer.Exit(0 if result.equal else 1)


def _print_rebuild(result) -> None:
    from rich.table import Table

    table = Table(title="checked (nothing swapped)" if result.checked else "rebuilt and swapped",
                  title_justify="left")
    for col in ("read model", "position", "events", "seconds", "events/s", "rows", "parked"):
        table.add_column(col, justify="left" if col == "read model" else "right")
    for m in result.models:
        table.add_row(m.name, f"{m.position:,}", f"{m.events:,}", f"{m.seconds:.1f}",
                      f"{m.events_per_second:,.0f}", f"{sum(m.rows.values()):,}", str(m.parked))
    console.print(table)
    for m in result.models:
        for c in m.checks:
            mark = "[green]equal[/]" if c.equal else "[red]DIFFERENT[/]"
            console.print(f"{m.name} {c.table}: {c.live:,} rows live, {c.rebuilt:,} rebuilt: "
                          f"{mark}", highlight=False)
            for label, rows in (("only live", c.only_live), ("only rebuilt", c.only_rebuilt)):
                for row in rows:
                    console.print(f"    {label}: {row}", markup=False, highlight=False)
    console.print(f"{len(result.models)} read models in {result.seconds:.1f}s", highlight=False)




keys_app = typer.Typer(help="API keys for systems (an admin's first key comes from here).",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _registry_db() -> tuple[str, str | None, str]:
    settings = Settings()
    return settings.database_url("registry"), settings.db_schema, settings.namespace


@keys_app.command("create")
def keys_create(role: str = typer.Option(..., help="admin, organiser, unit, reader or publisher"),
                name: str = typer.Option(..., help="who or what uses it, e.g. 淄博小程序"),
                organization: str | None = typer.Option(
                    None, "--organization", help="the organisation id it acts for (required "
                                                 "but for admin and publisher keys)"),
                rate_limit: int | None = typer.Option(None, help="writes per minute")) -> None:
    """Issue a key, written straight to the registry's database; printed once, never again."""
    from pydantic import ValidationError

    from shared.errors import Rejected
    from tongxin.keys import create_key

    url, schema, namespace = _registry_db()
    try:
        key = asyncio.run(create_key(url, schema, role=role, organization_id=organization,
                                     name=name, namespace=namespace, rate_limit=rate_limit))
    except (ValidationError, Rejected) as exc:
        console.print(f"[red]Not issued:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    console.print("The key (shown this once; keep it secret):", highlight=False)
    print(key)


@keys_app.command("list")
def keys_list() -> None:
    """Every key: id, role, organisation, name, and whether it is revoked."""
    from rich.table import Table

    from tongxin.keys import list_keys

    url, schema, _ = _registry_db()
    # The id is what `tongxin keys revoke` takes: never cut or wrapped, whatever the width.
    # The rest fits 80 columns: an organisation's id folds onto a second line, a name wraps
    # (in the width left: a Chinese name has no spaces to wrap at).
    table = Table(box=None, pad_edge=False, collapse_padding=True, header_style="bold")
    table.add_column("id", no_wrap=True, min_width=16)
    table.add_column("role", no_wrap=True)
    table.add_column("org", overflow="fold", min_width=18)
    table.add_column("name", overflow="fold", max_width=max(12, console.width - 68))
    table.add_column("created", no_wrap=True)
    table.add_column("revoked", no_wrap=True)
    for k in asyncio.run(list_keys(url, schema)):
        table.add_row(k["id"], k["role"], k["organization_id"] or "(all)", k["name"],
                      k["created_at"][:10], (k["revoked_at"] or "")[:10])
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="the id `tongxin keys list` shows")) -> None:
    """Revoke a key: every service refuses it once the registry has published this."""
    from tongxin.keys import revoke_key

    url, schema, namespace = _registry_db()
    if asyncio.run(revoke_key(url, schema, key_id, namespace)) is None:
        console.print(f"[red]No key {key_id!r}.[/]")
        raise typer.Exit(1)
    console.print(f"Key {key_id} revoked.")


if __name__ == "__main__":
    app()
