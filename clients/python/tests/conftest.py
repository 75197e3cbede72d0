"""The real flowlab server for the tests: one per storage backend and test session.

The binary is ``$FLOWLAB_BIN``, by default ``<repository>/target/debug/flowlab`` (what
``cargo test`` builds). Each server listens on a free port on 127.0.0.1 with a token and a
fresh database: a SQLite file in a temporary directory, and a new PostgreSQL database on
127.0.0.1:5432 (user ``postgres``) that is dropped afterwards. Without a reachable
PostgreSQL (``pg_isready -h 127.0.0.1`` fails) the PostgreSQL half is skipped.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import httpx
import pytest

import flowlab

REPO_ROOT = Path(__file__).resolve().parents[3]
OPENAPI = REPO_ROOT / "proto-docs" / "openapi.json"
TOKEN = "pyclient-test-token"

#: Small settings that keep a training run to a fraction of a second on a debug build.
TINY_TRAINING: dict[str, Any] = {
    "steps": 20,
    "batch_size": 8,
    "proxy": {"members": 2, "hidden": 16, "steps": 30},
    "elites": 8,
    "pool": 2,
    "pool_walk": 2,
    "refine": 1,
}
TINY_MODEL: dict[str, Any] = {"hidden": 16}

POSTGRES_HOST = "127.0.0.1"
POSTGRES_SKIP = (
    "PostgreSQL half skipped: no PostgreSQL accepts connections on 127.0.0.1:5432 "
    "(pg_isready -h 127.0.0.1 failed or is not installed)"
)


def flowlab_bin() -> Path:
    return Path(os.environ.get("FLOWLAB_BIN") or REPO_ROOT / "target" / "debug" / "flowlab")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@functools.cache
def postgres_available() -> bool:
    if shutil.which("pg_isready") is None or shutil.which("psql") is None:
        return False
    result = subprocess.run(
        ["pg_isready", "-h", POSTGRES_HOST], capture_output=True, timeout=10, check=False
    )
    return result.returncode == 0


def psql(command: str) -> None:
    subprocess.run(
        ["psql", "-h", POSTGRES_HOST, "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-c", command],
        capture_output=True,
        timeout=30,
        check=True,
    )


@dataclass
class Server:
    """A running flowlab server."""

    backend: str
    url: str
    token: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def client(self, **settings: Any) -> flowlab.Client:
        settings.setdefault("token", self.token)
        settings.setdefault("backoff", 0.05)
        return flowlab.Client(settings.pop("url", self.url), **settings)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def start_server(
    backend: str, database_url: str, directory: Path, *extra_args: str
) -> Iterator[Server]:
    binary = flowlab_bin()
    if not binary.exists():
        pytest.fail(
            f"the flowlab server binary {binary} does not exist: build it with "
            "`cargo build` (or `cargo test`) or point FLOWLAB_BIN at it",
            pytrace=False,
        )
    url = f"http://127.0.0.1:{free_port()}"
    log = directory / "server.log"
    env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "info")}
    for name in ("FLOWLAB_API_TOKEN", "DATABASE_URL", "FLOWLAB_BIND"):
        env.pop(name, None)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(binary),
                "serve",
                "--bind",
                url.removeprefix("http://"),
                "--database-url",
                database_url,
                "--api-token",
                TOKEN,
                *extra_args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    server = Server(backend, url, TOKEN, process, log)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            pytest.fail(
                f"flowlab serve exited with {process.returncode}:\n{server.log_tail()}",
                pytrace=False,
            )
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"flowlab serve never became healthy:\n{server.log_tail()}", pytrace=False)
        time.sleep(0.1)
    try:
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def database(backend: str, directory: Path) -> Generator[str, None, None]:
    """A fresh database URL for ``backend``, removed afterwards."""
    if backend == "sqlite":
        yield f"sqlite://{directory / 'flowlab.db'}"
        return
    name = f"flowlab_pyclient_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    psql(f"create database {name}")
    try:
        yield f"postgres://postgres@{POSTGRES_HOST}:5432/{name}"
    finally:
        psql(f"drop database if exists {name} with (force)")


def _server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    backend: str,
    *extra_args: str,
) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp(f"flowlab-{backend}")
    databases = database(backend, directory)
    database_url = next(databases)
    try:
        yield from start_server(backend, database_url, directory, *extra_args)
    finally:
        databases.close()


def backends() -> list[str]:
    """SQLite always; PostgreSQL where one accepts connections (else one message says so)."""
    return ["sqlite", "postgres"] if postgres_available() else ["sqlite"]


def pytest_report_header() -> list[str]:
    return [f"flowlab server: {flowlab_bin()}; backends: {', '.join(backends())}"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not postgres_available():
        terminalreporter.write_line(POSTGRES_SKIP, yellow=True, bold=True)


@pytest.fixture(scope="session", params=backends())
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The server every API test runs against, once per backend."""
    yield from _server(request, tmp_path_factory, request.param)


@pytest.fixture
def lab(server: Server) -> Iterator[flowlab.Client]:
    with server.client() as client:
        yield client


def tiny_campaign(
    lab: flowlab.Client,
    space: Optional[flowlab.Space] = None,
    name: Optional[str] = None,
    **settings: Any,
) -> flowlab.Campaign:
    """A campaign with training settings small enough for tests."""
    settings.setdefault("training", TINY_TRAINING)
    settings.setdefault("model", TINY_MODEL)
    return lab.create_campaign(
        name or f"test-{uuid.uuid4().hex[:8]}",
        space or flowlab.Sequence("ACGT", length=5),
        **settings,
    )


@pytest.fixture
def campaign(lab: flowlab.Client) -> flowlab.Campaign:
    return tiny_campaign(lab)
