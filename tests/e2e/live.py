"""Real processes for end-to-end tests: daphne and a Celery worker on the test database and the
tests' Redis database, started and stopped (or killed) by the tests.

`RedisServer` starts a private redis-server on a free port, for the fault tests that stop or
restart Redis: pass its `url` as `redis_url` to `Daphne` and `CeleryWorker` so that those processes
use it instead of the machine's shared Redis."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection

from chat.management.commands.serve import daphne_options

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"  # the browser tests' screenshots
E2E_MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="tierline-e2e-media-"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_env(redis_url: str | None = None, **extra: str) -> dict[str, str]:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    if redis_url:
        # test_settings puts the services on TEST_REDIS_DB of REDIS_URL: keep the URL's own db.
        env["TEST_REDIS_DB"] = redis_url.rsplit("/", 1)[1] or "0"
    env.update(
        DJANGO_SETTINGS_MODULE="helpdesk.test_settings",
        DATABASE_URL=(
            f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
            # so that a test can find (and pg_terminate_backend) the servers' connections
            "?application_name=tierline-e2e"
        ),
        REDIS_URL=redis_url or settings.TEST_REDIS_URL,
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
    )
    # Every browser and socket of a test run comes from 127.0.0.1: the anonymous rate limits
    # (tested on their own, tests/chat/test_views.py) would refuse the journeys' chat starts.
    for name in (
        "CHAT_START_RATE_PER_ADDRESS",
        "CHAT_START_RATE_PER_VISITOR",
        "LEFT_MESSAGE_RATE_PER_ADDRESS",
        "LEFT_MESSAGE_RATE_PER_VISITOR",
        "ATTACHMENT_RATE_PER_ADDRESS",
        "ATTACHMENT_RATE_PER_VISITOR",
    ):
        env[name] = "100000/1m"
    # The servers collect garbage as production's do (the test process itself does not freeze).
    env["GC_FREEZE_SECONDS"] = "600"
    # Files the journeys send go to a directory of the run's own, never to the checkout's var/.
    env["MEDIA_ROOT"] = str(E2E_MEDIA_ROOT)
    env.update(extra)
    return env


class Process:
    """A child process whose output is collected; `wait_for_line` waits for a line event."""

    def __init__(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self.name, self.args, self.env = name, args, env
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.args,
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip())
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for_line(
        self, predicate: Callable[[str], bool], timeout: float = 30, start: int = 0
    ) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            index = start
            while True:
                while index < len(self.lines):
                    if predicate(self.lines[index]):
                        return self.lines[index]
                    index += 1
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited:\n" + "\n".join(self.lines[-40:]))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"{self.name}: no such line:\n" + "\n".join(self.lines[-40:])
                    )
                self._cond.wait(remaining)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout)


class RedisServer(Process):
    """A redis-server of the test's own, on a free port, with nothing persisted: stopping it loses
    everything in it, as a crashed Redis without persistence would."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        super().__init__(
            "redis",
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                # As deployment.md asks of a broker: refuse writes rather than evict tasks.
                "--maxmemory-policy",
                "noeviction",
                "--dir",
                "/tmp",  # noqa: S108 - nothing is written there (no persistence)
            ],
            dict(os.environ),
        )

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        mark = len(self.lines)
        super().start()
        try:
            self.wait_for_line(lambda line: "Ready to accept connections" in line, start=mark)
        except BaseException:
            self.stop(signal.SIGKILL)
            raise

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()


class Daphne(Process):
    def __init__(
        self,
        port: int | None = None,
        *,
        redis_url: str | None = None,
        args: tuple[str, ...] = (),
        **env: str,
    ) -> None:
        self.port = port or free_port()
        super().__init__(
            "daphne",
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                *daphne_options(),
                *args,
                "helpdesk.asgi:application",
            ],
            service_env(redis_url, **env),
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        super().start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop(signal.SIGKILL)  # never leave a half-started server behind
            raise

    def wait_ready(self, timeout: float = 30) -> None:
        """Until /healthz answers: the server is up and reaches the database."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.base_url + "/healthz", timeout=2) as response:  # noqa: S310 - local
                    if response.status == 200:
                        return
            except OSError:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError("daphne exited:\n" + "\n".join(self.lines[-40:])) from None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # connection refused: the port is not open yet

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()


class CeleryWorker(Process):
    def __init__(
        self, *, beat: bool = False, name: str = "e2e", redis_url: str | None = None, **env: str
    ) -> None:
        args = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "helpdesk",
            "worker",
            "--pool=threads",
            "--concurrency=4",
            "--loglevel=INFO",
            "--without-mingle",
            "--without-gossip",
            f"--hostname={name}@%h",
        ]
        if beat:
            schedule = ROOT / "var" / f"test-beat-{os.getpid()}-{name}"
            args += ["--beat", f"--schedule={schedule}"]
        super().__init__("celery", args, service_env(redis_url, CELERY_LOG_LEVEL="INFO", **env))

    def start(self) -> None:
        mark = len(self.lines)
        super().start()
        try:
            self.wait_for_line(lambda line: " ready." in line, timeout=60, start=mark)
        except BaseException:
            self.stop(signal.SIGKILL)  # never leave a half-started worker behind
            raise


def off_thread(work: Callable[[], Any]) -> Any:
    """Run database work on another thread: Playwright's sync API keeps an event loop running on
    the test's thread, where Django refuses synchronous database calls."""

    def run() -> Any:
        from django.db import connections

        try:
            return work()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result(timeout=30)
