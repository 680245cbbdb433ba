"""What the realtime and escalation benchmarks share: their own database and Redis database, the
product's processes (daphne, Celery) started as in production, /proc readings, and the bench
chats (each held by its own agent, so that every chat has a visitor and an agent socket)."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / "var" / "bench-logs"
BENCH_DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tierline_bench_rt"
)
BENCH_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ["DATABASE_URL"] = BENCH_DATABASE_URL
    os.environ["REDIS_URL"] = BENCH_REDIS_URL
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings")
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
    ensure_database()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def ensure_database() -> None:
    import psycopg

    name = BENCH_DATABASE_URL.rsplit("/", 1)[1]
    admin_url = BENCH_DATABASE_URL.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def flush_bench_redis() -> None:
    import redis

    redis.Redis.from_url(BENCH_REDIS_URL).flushdb()  # the bench's own database only


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# More than any benchmark opens (bench/escalation: 4,000 load sockets, 400 for the escalated
# chats, the tier-2 consoles).
MAX_BENCH_SOCKETS = 20_000


def server_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="helpdesk.settings",
        DATABASE_URL=BENCH_DATABASE_URL,
        REDIS_URL=BENCH_REDIS_URL,
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        # Persistent database connections (the production setting); flood control is per
        # socket and a load client sends far more than a person: lifted for the benchmark.
        DATABASE_CONN_MAX_AGE="600",
        WS_FRAMES_PER_SECOND="100000",
        WS_FRAME_BURST="100000",
        # All of the load client's sockets come from 127.0.0.1: the per-address cap (100 by
        # default, against one client hoarding sockets) would refuse all but the first 100.
        WS_MAX_CONNECTIONS_PER_ADDRESS=str(MAX_BENCH_SOCKETS),
        # The load client's consoles do not send the page's 20 s "still here" ping: keep their
        # agents online for the whole run.
        AGENT_GONE_SECONDS="86400",
        # The timer benchmark queues a thousand chats in one pipeline on purpose.
        MAX_WAITING_CHATS_PER_PIPELINE="100000",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class Process:
    def __init__(
        self, name: str, args: list[str], env: dict[str, str], pass_fds: tuple[int, ...] = ()
    ) -> None:
        self.name, self.args, self.env, self.pass_fds = name, args, env, pass_fds
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "Process":
        LOGS.mkdir(parents=True, exist_ok=True)
        log = (LOGS / f"{self.name}.log").open("wb")
        self.proc = subprocess.Popen(
            self.args,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=self.pass_fds,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(15)


def wait_port(port: int, proc: Process, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited; see {LOGS / (proc.name + '.log')}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"{proc.name} did not open port {port}")


def wait_http(url: str, proc: Process, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - local
                if response.status == 200:
                    return
        except OSError:
            if not proc.alive():
                raise RuntimeError(
                    f"{proc.name} exited; see {LOGS / (proc.name + '.log')}"
                ) from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# As `manage.py serve` runs daphne (chat.management.commands.serve.daphne_options with the
# default WS_HANDSHAKE_TIMEOUT_SECONDS); the bench does not load Django's settings itself.
DAPHNE_OPTIONS = ("--websocket_connect_timeout", "30")


def daphne(port: int, name: str = "daphne", **env: str) -> Process:
    return Process(
        name,
        [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "--websocket_timeout",
            "-1",
            *DAPHNE_OPTIONS,
            "helpdesk.asgi:application",
        ],
        server_env(**env),
    )


def listening_socket(port: int) -> socket.socket:
    """A listening TCP socket on 127.0.0.1:`port`, to hand down to several server processes
    (as a supervisor does): the kernel spreads the connections among those that accept."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(4096)
    sock.set_inheritable(True)
    return sock


def daphne_on_socket(sock: socket.socket, name: str, **env: str) -> Process:
    """daphne serving a socket it was handed (`--fd`), not one it binds."""
    fd = sock.fileno()
    return Process(
        name,
        [
            sys.executable,
            "-m",
            "daphne",
            "--fd",
            str(fd),
            "--websocket_timeout",
            "-1",
            *DAPHNE_OPTIONS,
            "helpdesk.asgi:application",
        ],
        server_env(**env),
        pass_fds=(fd,),
    )


def uvicorn(port: int, name: str = "uvicorn", **env: str) -> Process:
    """The same ASGI application on uvicorn: uvloop, httptools, the `websockets` library's
    sans-I/O protocol; pings every 20 s as daphne's."""
    return Process(
        name,
        [
            sys.executable,
            "-m",
            "uvicorn",
            "helpdesk.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--ws",
            env.pop("UVICORN_WS", "websockets-sansio"),
            "--lifespan",
            "off",
            "--no-access-log",
            "--log-level",
            "warning",
            "--backlog",
            "4096",
        ],
        server_env(**env),
    )


def granian(port: int, name: str = "granian", **env: str) -> Process:
    """The same ASGI application on granian (Rust I/O, one worker, uvloop)."""
    return Process(
        name,
        [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--loop",
            "uvloop",
            "--no-access-log",
            "--log-level",
            "warning",
            "--backlog",
            "4096",
            "helpdesk.asgi:application",
        ],
        server_env(**env),
    )


def celery_worker(**env: str) -> Process:
    return Process(
        "celery",
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "helpdesk",
            "worker",
            "--pool=threads",
            "--concurrency=4",
            "--loglevel=WARNING",
            "--without-mingle",
            "--without-gossip",
            "--hostname=bench@%h",
        ],
        server_env(**env),
    )


def celery_beat(**env: str) -> Process:
    LOGS.mkdir(parents=True, exist_ok=True)
    return Process(
        "beat",
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "helpdesk",
            "beat",
            "--loglevel=WARNING",
            f"--schedule={LOGS / 'beat-schedule'}",
        ],
        server_env(**env),
    )


# --- /proc -----------------------------------------------------------------------------------
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (granian serves from a child process of its own)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def tree_rss_mb(pid: int) -> float:
    return sum(rss_mb(p) for p in process_tree(pid))


def pids_named(*names: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm = (entry / "comm").read_text().strip()
            except OSError:
                continue
            if comm in names:
                found.append(int(entry.name))
    return found


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class CpuMeter:
    """CPU share (1.0 = one core) of given processes between start() and read(); processes that
    come and go in between (PostgreSQL backends) count from when they are first seen."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.start()

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.before = {p: cpu_seconds(p) for v in self.groups.values() for p in v}
        self.machine0 = machine_cpu()

    def read(self) -> dict[str, float]:
        elapsed = max(1e-9, time.monotonic() - self.t0)
        out = {}
        for name, pids in self.groups.items():
            used = 0.0
            for pid in pids:
                now = cpu_seconds(pid)
                if now:
                    used += max(0.0, now - self.before.get(pid, 0.0))
            out[name] = used / elapsed
        busy1, total1 = machine_cpu()
        busy0, total0 = self.machine0
        out["machine"] = (busy1 - busy0) / max(1, total1 - total0) * (os.cpu_count() or 1)
        return out


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split(" ")[0:3].__str__()


# --- Bench chats ---------------------------------------------------------------------------------
@dataclass
class BenchChat:
    chat_id: int
    token: str
    cookie: str
    agent_id: int


def bench_config() -> dict[str, Any]:
    from escalation.models import (
        AgentGroup,
        EscalationOption,
        Pipeline,
        RoutingPolicy,
        Stage,
        TargetKind,
        Tier,
        Topic,
    )

    t1, _ = Tier.objects.get_or_create(level=1, defaults={"name": "Level 1"})
    t2, _ = Tier.objects.get_or_create(level=2, defaults={"name": "Level 2"})
    g1, _ = AgentGroup.objects.get_or_create(
        name="Bench L1",
        defaults={"tier": t1, "routing_policy": RoutingPolicy.MANUAL, "default_capacity": 1},
    )
    g2, _ = AgentGroup.objects.get_or_create(
        name="Bench L2",
        defaults={"tier": t2, "routing_policy": RoutingPolicy.MANUAL, "default_capacity": 1},
    )
    pipeline, _ = Pipeline.objects.get_or_create(name="Bench")
    s1, _ = Stage.objects.get_or_create(
        pipeline=pipeline, name="Bench L1", defaults={"tier": t1, "wait_timeout_seconds": 86400}
    )
    s2, _ = Stage.objects.get_or_create(
        pipeline=pipeline, name="Bench L2", defaults={"tier": t2, "wait_timeout_seconds": 86400}
    )
    s1.groups.set([g1])
    s2.groups.set([g2])
    if pipeline.entry_stage_id != s1.pk:
        pipeline.entry_stage = s1
        pipeline.save()
    Topic.objects.get_or_create(name="Bench", defaults={"pipeline": pipeline})
    EscalationOption.objects.get_or_create(
        stage=s1,
        keyword="l2",
        defaults={
            "label": "Bench L2",
            "target_kind": TargetKind.STAGE,
            "target_stage": s2,
            "note_required": False,
            "no_agent_rule": "queue",
        },
    )
    return {"t1": t1, "t2": t2, "g1": g1, "g2": g2, "pipeline": pipeline, "s1": s1, "s2": s2}


def make_agent(username: str, group: Any) -> Any:
    from django.contrib.auth.models import Group, User

    from escalation.models import Agent

    user, created = User.objects.get_or_create(username=username)
    if created:
        user.set_unusable_password()
        user.save()
        user.groups.add(Group.objects.get(name="Agents"))
    agent, _ = Agent.objects.get_or_create(user=user, defaults={"display_name": username})
    agent.groups.add(group)
    if agent.presence != Agent.Presence.ONLINE:
        agent.presence = Agent.Presence.ONLINE
        agent.save(update_fields=["presence"])
    return agent


def session_cookie(user: Any) -> str:
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def bench_chats(n: int, prefix: str = "bench") -> list[BenchChat]:
    """`n` active chats, chat i held by agent `<prefix>-agent-i` (created once, then reused)."""
    from chat.models import ChatSession
    from chat.selectors import make_visitor_token
    from escalation import services
    from escalation.models import Assignment

    config = bench_config()
    out: list[BenchChat] = []
    started = time.monotonic()
    for i in range(n):
        agent = make_agent(f"{prefix}-agent-{i}", config["g1"])
        held = (
            Assignment.objects.filter(
                agent=agent, ended_at__isnull=True, chat__status=ChatSession.Status.ACTIVE
            )
            .values_list("chat_id", flat=True)
            .first()
        )
        if held is None:
            chat = services.start_chat(
                visitor_name=f"Visitor {i}",
                visitor_email="",
                topic_name="Bench",
                first_message="hello",
                visitor_context={},
            )
            services.take_chat(chat_id=chat.pk, agent=agent)
            held = chat.pk
        chat = ChatSession.objects.get(pk=held)
        out.append(BenchChat(held, make_visitor_token(chat), session_cookie(agent.user), agent.pk))
        if i and i % 500 == 0:
            print(f"  prepared {i} chats ({time.monotonic() - started:.0f} s)", flush=True)
    return out
