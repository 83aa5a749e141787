"""The benchmark: what the SQS endpoint gives, what Celery takes of it, and what our pipeline costs on top.

One run, one endpoint, side by side, so that ratios hold on a noisy machine:

1. raw boto3: SendMessageBatch of 10 while ReceiveMessage (10, long polling)
   and DeleteMessageBatch drain the queue;
2. a no-op Celery task through a worker with the project's settings;
3. the order task, sent straight to SQS;
4. the full pipeline: HTTP POST, outbox, relay, worker, processed order;
plus an idle worker's CPU, and the order task's rate with few and with many
existing orders. SQS calls are counted by a proxy in front of the endpoint.
Everything runs on 127.0.0.1 and stops by itself.
"""

import json
import os
import secrets
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from celery import current_app
from django.db import connection
from django_celery_results.models import TaskResult

from broker.config import LOCAL_ACCOUNT_ID
from broker.tasks import NOOP_TASK
from orders.models import Order
from orders.services import PROCESS_ORDER_TASK, product_restock
from stack import components
from stack.cpu import cpu_seconds
from stack.processes import ManagedProcess, free_port
from stack.tcp_proxy import TcpProxy

QUEUE_PREFIX = "bench-"
PRODUCT = "BENCH-ITEM"
STACK_ENVIRONMENT = {**components.HARNESS_ENVIRONMENT, "SQS_QUEUE_PREFIX": QUEUE_PREFIX}


@dataclass
class BenchSettings:
    messages: int = 1000
    idle_seconds: float = 30
    # Existing orders for the growth comparison; 0 skips it.
    large_table: int = 0
    timeout: float = 600


@dataclass
class Phase:
    name: str
    messages: int
    seconds: float
    # SQS API calls during the phase, by action.
    sqs_calls: dict = field(default_factory=dict)
    latencies: list = field(default_factory=list, repr=False)
    worker_cpu_seconds: float | None = None
    complete: bool = True

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    @property
    def sqs_calls_per_message(self) -> float:
        return sum(self.sqs_calls.values()) / self.messages if self.messages else 0.0

    def percentile(self, share: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    def as_dict(self) -> dict:
        summary = asdict(self)
        summary.pop("latencies")
        latency = {f"p{int(share * 100)}": self.percentile(share) for share in (0.5, 0.95, 0.99)}
        cpu = self.worker_cpu_seconds
        return {
            **summary,
            "rate_per_second": self.rate,
            "sqs_calls_per_message": self.sqs_calls_per_message,
            "latency_seconds": latency,
            "worker_cpu_seconds_per_1000": None if cpu is None else cpu / self.messages * 1000,
        }


class Bench:
    def __init__(self, settings: BenchSettings, *, endpoint: str, database_url: str, log_dir: Path, write=print):
        self.settings = settings
        self.upstream_endpoint = endpoint
        self.database_url = database_url
        self.log_dir = log_dir / time.strftime("%Y%m%d-%H%M%S")
        self.write = write
        self.processes: list[ManagedProcess] = []
        self.phases: list[Phase] = []
        self.extra: dict = {}

    def run(self) -> dict:
        try:
            self._start_stack()
            self._measure_raw()
            worker = self._start_worker()
            self._measure_tasks("celery no-op task", NOOP_TASK, lambda number: {}, worker)
            self._measure_tasks("order task", PROCESS_ORDER_TASK, self._order_kwargs("direct"), worker)
            self._measure_pipeline(worker)
            self._measure_idle(worker)
            if self.settings.large_table:
                self._measure_growth(worker)
            return self._report()
        finally:
            self.proxy.stop()
            for process in reversed(self.processes):
                process.stop()

    # --- the stack --------------------------------------------------------
    def _start_stack(self) -> None:
        endpoint = self.upstream_endpoint
        if not endpoint:
            sqs, endpoint = components.sqs_server(log_dir=self.log_dir)
            self.processes.append(sqs)
        self.extra["endpoint"] = endpoint
        # This process sends tasks too, with the same credentials as the stack.
        for name, value in components.LOCAL_AWS_ENVIRONMENT.items():
            os.environ.setdefault(name, value)
        self.proxy = TcpProxy(target_port=int(endpoint.rsplit(":", 1)[1])).start()
        self.env = components.local_environment(
            **STACK_ENVIRONMENT,
            AWS_ENDPOINT_URL_SQS=self.proxy.url,
            DATABASE_URL=self.database_url,
            DJANGO_SECRET_KEY=secrets.token_urlsafe(32),
        )
        self.sqs = components.boto3_client("sqs", endpoint_url=self.proxy.url, env=self.env)
        self.queue_url = f"{self.proxy.url}/{LOCAL_ACCOUNT_ID}/{QUEUE_PREFIX}orders"
        components.manage("setup_queues", env=self.env)
        components.manage("migrate", "--no-input", env=self.env)
        product_restock(sku=PRODUCT, name="Benchmark item", stock=10**9)
        self.web_port = free_port()
        self.processes.append(components.web_server(env=self.env, log_dir=self.log_dir, port=self.web_port))
        self.processes.append(components.outbox_relay(env=self.env, log_dir=self.log_dir))
        # The test process sends tasks to the bench queue, through the proxy.
        current_app.conf.broker_url = f"sqs://127.0.0.1:{self.proxy.port}"
        current_app.conf.broker_transport_options = {
            **current_app.conf.broker_transport_options,
            "is_secure": False,
            "region": self.env["AWS_DEFAULT_REGION"],
            "predefined_queues": {f"{QUEUE_PREFIX}orders": {"url": self.queue_url}},
        }
        current_app.conf.task_default_queue = f"{QUEUE_PREFIX}orders"

    def _start_worker(self) -> ManagedProcess:
        worker = components.celery_worker(
            name="bench-worker", env={**self.env, **components.WORKER_ENVIRONMENT}, log_dir=self.log_dir
        )
        self.processes.append(worker)
        return worker

    # --- phases -----------------------------------------------------------
    def _measure_raw(self) -> None:
        """boto3 alone: a producer sending batches of 10 while a consumer receives and deletes."""
        url = self.sqs.create_queue(QueueName=f"{QUEUE_PREFIX}raw")["QueueUrl"]
        total = self.settings.messages
        before = self.proxy.sqs_requests.snapshot()
        start = time.monotonic()
        received = 0
        pacer = Pacer(lambda: received)

        def produce():
            for first in range(0, total, 10):
                pacer.wait_for_room(first)
                entries = [{"Id": str(i), "MessageBody": "x" * 200} for i in range(min(10, total - first))]
                self.sqs.send_message_batch(QueueUrl=url, Entries=entries)

        producer = threading.Thread(target=produce)
        producer.start()
        deadline = start + self.settings.timeout
        while received < total and time.monotonic() < deadline:
            messages = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", []
            )
            if messages:
                self.sqs.delete_message_batch(
                    QueueUrl=url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
                )
                received += len(messages)
        producer.join()
        pacer.stop()
        elapsed = time.monotonic() - start
        self._record(
            Phase("raw boto3 (send 10, receive 10, delete 10)", received, elapsed, complete=received == total), before
        )

    def _measure_tasks(self, name: str, task_name: str, kwargs_for, worker: ManagedProcess) -> Phase:
        """Send tasks straight to SQS while the worker consumes; wait for every result."""
        total = self.settings.messages
        sent_at: dict[str, float] = {}
        before, cpu_before = self.proxy.sqs_requests.snapshot(), cpu_seconds(worker.pid)
        start = time.time()
        start_at = datetime.fromtimestamp(start, tz=UTC)
        pacer = Pacer(
            lambda: TaskResult.objects.filter(task_name=task_name, status="SUCCESS", date_done__gte=start_at).count()
        )
        with current_app.producer_or_acquire() as producer:
            for number in range(total):
                pacer.wait_for_room(number)
                task_id = str(uuid.uuid4())
                sent_at[task_id] = time.time()
                current_app.send_task(task_name, kwargs=kwargs_for(number), task_id=task_id, producer=producer)
        pacer.stop()
        done = self._wait_for_results(set(sent_at))
        elapsed = (max(done.values()) if done else time.time()) - start
        phase = Phase(name, len(done), elapsed, complete=len(done) == total)
        phase.latencies = [done[task_id] - sent_at[task_id] for task_id in done]
        phase.worker_cpu_seconds = cpu_seconds(worker.pid) - cpu_before
        self._record(phase, before)
        return phase

    def _measure_pipeline(self, worker: ManagedProcess) -> None:
        """HTTP POST to processed order: web, outbox, relay, SQS, worker."""
        total = self.settings.messages
        run = uuid.uuid4().hex[:8]
        posted_at: dict[str, float] = {}
        orders = Order.objects.filter(order_id__startswith=f"bench-{run}-pipe-")
        before, cpu_before = self.proxy.sqs_requests.snapshot(), cpu_seconds(worker.pid)
        start = time.time()
        pacer = Pacer(orders.count)

        def post(number: int) -> None:
            pacer.wait_for_room(number)
            order_id = f"bench-{run}-pipe-{number}"
            body = json.dumps({"order_id": order_id, "item": PRODUCT, "quantity": 1}).encode()
            request = urllib.request.Request(
                f"http://127.0.0.1:{self.web_port}/api/orders/", data=body, headers={"Content-Type": "application/json"}
            )
            posted_at[order_id] = time.time()
            with urllib.request.urlopen(request, timeout=30):  # noqa: S310 - our local web server
                pass

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(post, range(total)))
        pacer.stop()
        deadline = time.monotonic() + self.settings.timeout
        while orders.count() < total and time.monotonic() < deadline:
            time.sleep(0.2)
        done = {
            order_id: processed.timestamp() for order_id, processed in orders.values_list("order_id", "processed_at")
        }
        elapsed = (max(done.values()) if done else time.time()) - start
        phase = Phase("full pipeline (HTTP POST to processed order)", len(done), elapsed, complete=len(done) == total)
        phase.latencies = [done[order_id] - posted_at[order_id] for order_id in done]
        phase.worker_cpu_seconds = cpu_seconds(worker.pid) - cpu_before
        self._record(phase, before)

    def _measure_idle(self, worker: ManagedProcess) -> None:
        before = cpu_seconds(worker.pid)
        time.sleep(self.settings.idle_seconds)
        used = cpu_seconds(worker.pid) - before
        self.extra["idle_worker_cpu_share"] = used / self.settings.idle_seconds
        self.write(f"idle worker: {used:.2f} CPU s in {self.settings.idle_seconds:g} s")

    def _measure_growth(self, worker: ManagedProcess) -> None:
        """The order task's rate with few existing orders, then with `large_table` of them."""
        small = self._measure_tasks(
            "order task, few orders in the table", PROCESS_ORDER_TASK, self._order_kwargs("small"), worker
        )
        inserted = _insert_orders(self.settings.large_table)
        try:
            large = self._measure_tasks(
                f"order task, {self.settings.large_table:,} more orders",
                PROCESS_ORDER_TASK,
                self._order_kwargs("large"),
                worker,
            )
        finally:
            _delete_inserted_orders(inserted)
        self.extra["rate_large_over_small"] = large.rate / small.rate if small.rate else None

    # --- helpers ----------------------------------------------------------
    def _order_kwargs(self, label: str):
        run = uuid.uuid4().hex[:8]
        return lambda number: {"order_id": f"bench-{run}-{label}-{number}", "item": PRODUCT, "quantity": 1}

    def _wait_for_results(self, task_ids: set[str]) -> dict[str, float]:
        deadline = time.monotonic() + self.settings.timeout
        done: dict[str, float] = {}
        while len(done) < len(task_ids) and time.monotonic() < deadline:
            time.sleep(0.2)
            pending = list(task_ids - done.keys())
            for start in range(0, len(pending), 500):
                finished = TaskResult.objects.filter(task_id__in=pending[start : start + 500], status="SUCCESS")
                done.update((task_id, at.timestamp()) for task_id, at in finished.values_list("task_id", "date_done"))
        return done

    def _record(self, phase: Phase, calls_before) -> None:
        after = self.proxy.sqs_requests.snapshot()
        phase.sqs_calls = dict(after - calls_before)
        self.phases.append(phase)
        self.write(
            f"{phase.name}: {phase.messages} in {phase.seconds:.1f}s = {phase.rate:.1f}/s, "
            f"{phase.sqs_calls_per_message:.2f} SQS calls per message"
        )

    def _report(self) -> dict:
        rates = {phase.name: phase.rate for phase in self.phases}
        names = [phase.name for phase in self.phases]
        raw, noop, order, pipeline = (rates.get(name) for name in names[:4])
        return {
            "phases": [phase.as_dict() for phase in self.phases],
            "ratios": {
                "order task / no-op": order / noop if noop else None,
                "pipeline / no-op": pipeline / noop if noop else None,
                "no-op / raw": noop / raw if raw else None,
                "order task / raw": order / raw if raw else None,
            },
            **self.extra,
            "complete": all(phase.complete for phase in self.phases),
        }


class Pacer:
    """Keeps at most WINDOW messages in flight: producers wait while consumers are behind.

    moto slows down as a queue gets deeper (it walks every message on each
    send), so an unpaced producer measures moto's worst case, not the steady
    state in which producers and consumers run together.
    """

    WINDOW = 20

    def __init__(self, count_done):
        self.done = 0
        self._count_done = count_done
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="pacer")
        self._thread.start()

    def wait_for_room(self, sent: int) -> None:
        while sent - self.done >= self.WINDOW and not self._stop.is_set():
            time.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        try:
            while not self._stop.is_set():
                self.done = self._count_done()
                time.sleep(0.05)
        finally:
            connection.close()  # this thread's own database connection


def format_report(report: dict) -> str:
    lines = [
        "| measurement | messages | rate /s | p50 s | p95 s | p99 s | SQS calls / msg | worker CPU s / 1000 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for phase in report["phases"]:
        latency = phase["latency_seconds"]
        cpu = phase["worker_cpu_seconds_per_1000"]
        cells = [
            phase["name"],
            str(phase["messages"]),
            f"{phase['rate_per_second']:.1f}",
            *("-" if latency[key] is None else f"{latency[key]:.3f}" for key in ("p50", "p95", "p99")),
            f"{phase['sqs_calls_per_message']:.2f}",
            "-" if cpu is None else f"{cpu:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"{name}: {value:.2f}" for name, value in report["ratios"].items() if value is not None]
    if "idle_worker_cpu_share" in report:
        lines.append(f"idle worker CPU: {report['idle_worker_cpu_share'] * 100:.2f} % of a core")
    if report.get("rate_large_over_small"):
        lines.append(f"order task rate, large table / small table: {report['rate_large_over_small']:.2f}")
    return "\n".join(lines)


def _insert_orders(count: int) -> str:
    """Insert `count` processed orders, with their idempotency keys, in bulk; return their id prefix."""
    prefix = f"bulk-{uuid.uuid4().hex[:8]}-"
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO orders_order (order_id, item, quantity, status, reason, task_id, created_at, processed_at) "
            "SELECT %s || n, %s, 1, 'processed', '', '', now(), now() FROM generate_series(1, %s) AS n",
            [prefix, PRODUCT, count],
        )
        for scope in ("orders.submit", "orders.process"):
            cursor.execute(
                "INSERT INTO idempotency_idempotencykey (scope, key, fingerprint, payload, result, created_at) "
                "SELECT %s, %s || n, md5(n::text), '{}'::jsonb, '{}'::jsonb, now() FROM generate_series(1, %s) AS n",
                [scope, prefix, count],
            )
        cursor.execute("ANALYZE orders_order; ANALYZE idempotency_idempotencykey")
    return prefix


def _delete_inserted_orders(prefix: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM orders_order WHERE order_id LIKE %s", [f"{prefix}%"])
        cursor.execute("DELETE FROM idempotency_idempotencykey WHERE key LIKE %s", [f"{prefix}%"])
