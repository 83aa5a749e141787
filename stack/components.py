"""The parts of the local stack: SQS server, Celery worker, web server, set-up commands."""

import os
import subprocess
import sys
from pathlib import Path

import boto3

from stack.processes import ManagedProcess, free_port

PROJECT_DIR = Path(__file__).resolve().parent.parent

# Any credentials do for a local SQS server; boto3 refuses to sign without some.
LOCAL_AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
}


# What the harnesses (chaos, bench) run their own stacks with: production-like
# settings, on 127.0.0.1.
HARNESS_ENVIRONMENT = {
    "DJANGO_DEBUG": "false",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
    "ORDERS_TEST_PROCESSING_DELAY": "0",
}
# Workers keep their database connections, as in production. (Not the web
# server: runserver opens a thread per request, and each thread would keep a
# connection until PostgreSQL runs out of them.)
WORKER_ENVIRONMENT = {"DATABASE_CONN_MAX_AGE": "60"}


def boto3_client(service: str, *, endpoint_url: str, env: dict[str, str]):
    """A boto3 client for a local endpoint, with the credentials of `env`."""
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def local_environment(**overrides: str) -> dict[str, str]:
    """This process's environment, with local AWS credentials unless some are set."""
    env = dict(os.environ)
    for name, value in LOCAL_AWS_ENVIRONMENT.items():
        env.setdefault(name, value)
    env.update(overrides)
    return env


def sqs_server(*, log_dir: Path, port: int | None = None) -> tuple[ManagedProcess, str]:
    """Start moto's server mode on 127.0.0.1; return it and its endpoint URL."""
    port = port or free_port()
    process = ManagedProcess(
        "sqs",
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=local_environment(),
        log_path=log_dir / "sqs.log",
        cwd=PROJECT_DIR,
    ).start()
    process.wait_for_port(port, timeout=30)
    return process, f"http://127.0.0.1:{port}"


def celery_worker(*, name: str, env: dict[str, str], log_dir: Path, concurrency: int = 2) -> ManagedProcess:
    """Start `celery -A project worker` and wait until it consumes."""
    process = ManagedProcess(
        name,
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "project",
            "worker",
            f"--loglevel={env.get('WORKER_LOG_LEVEL', 'INFO')}",
            f"--concurrency={concurrency}",
            f"--hostname={name}@%h",
            # Gossip, mingle and heartbeats need broadcast, which SQS lacks.
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        env=env,
        log_path=log_dir / f"{name}.log",
        cwd=PROJECT_DIR,
    ).start()
    process.wait_for_log(" ready.", timeout=60)
    return process


def outbox_relay(*, name: str = "relay", env: dict[str, str], log_dir: Path) -> ManagedProcess:
    """Start `python manage.py relay` and wait until it relays."""
    process = ManagedProcess(
        name, [sys.executable, "manage.py", "relay"], env=env, log_path=log_dir / f"{name}.log", cwd=PROJECT_DIR
    ).start()
    process.wait_for_log("Outbox relay started", timeout=60)
    return process


def web_server(*, env: dict[str, str], log_dir: Path, port: int) -> ManagedProcess:
    """Start Django's server on 127.0.0.1:`port`."""
    process = ManagedProcess(
        "web",
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        env=env,
        log_path=log_dir / "web.log",
        cwd=PROJECT_DIR,
    ).start()
    process.wait_for_port(port, timeout=60)
    return process


def manage(*args: str, env: dict[str, str]) -> None:
    """Run `python manage.py ARGS` to completion; raise if it fails."""
    subprocess.run([sys.executable, "manage.py", *args], env=env, cwd=PROJECT_DIR, check=True)
