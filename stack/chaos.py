"""The chaos run: orders flow through the whole local stack while its parts fail.

It starts its own stack on 127.0.0.1 (a local SQS server behind a proxy that
can play dead, a web server, Celery workers) on the configured PostgreSQL
database, posts orders through the HTTP API (some twice, some of their SQS
messages copied by hand), and meanwhile SIGKILLs workers and restarts them,
takes SQS away, and kills the workers' database connections. When the queue
has drained it reconciles what was accepted with what the database holds.
Everything it starts is stopped by PID at the end.
"""

import json
import math
import random
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from django.db import connection
from django.db.models import Count, Sum

from broker.config import LOCAL_ACCOUNT_ID
from broker.messages import task_message_from_body
from orders.models import Order, Product
from orders.services import ORDER_PROCESSED_EVENT, product_restock
from outbox.messages import stable_event_id
from outbox.models import OutboxMessage
from stack import components
from stack.postgres import connections_refused, terminate_connections
from stack.processes import ManagedProcess, free_port
from stack.tcp_proxy import TcpProxy

# Each run gets queues and a topic of its own (chaos-<run>-orders, ...): its
# relays then publish only its own outbox rows, never those an aborted run left.
QUEUE_PREFIX = "chaos-"
# Tagged connections are the ones the run kills, and no others.
APPLICATION_NAME = "orders-chaos"
# About a third of the orders find the stock short.
PRODUCTS = {"CHAOS-A": 600, "CHAOS-B": 500, "CHAOS-C": 60}
# Short enough that messages of killed workers come back quickly.
STACK_ENVIRONMENT = {
    **components.HARNESS_ENVIRONMENT,
    "SQS_VISIBILITY_TIMEOUT": "20",
    "TASK_TIME_LIMIT": "10",
    "SQS_MAX_RECEIVE_COUNT": "5",
}


@dataclass
class ChaosSettings:
    orders: int = 1000
    workers: int = 2
    worker_kills: int = 5
    relays: int = 2
    relay_kills: int = 2
    outage_seconds: float = 15
    duplicated_messages: int = 50
    # Share of orders posted a second time.
    repost_share: float = 0.12
    drain_timeout: float = 300
    seed: int = field(default_factory=lambda: random.SystemRandom().randrange(1_000_000))


@dataclass
class Tally:
    """What happened, counted by the threads that made it happen."""

    accepted: set = field(default_factory=set)
    posts: Counter = field(default_factory=Counter)
    messages_copied: int = 0
    worker_kills: int = 0
    relay_kills: int = 0
    outages: int = 0
    database_connections_killed: int = 0
    fault_errors: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class ChaosRun:
    def __init__(self, settings: ChaosSettings, *, log_dir: Path, database_url: str, write=print):
        self.settings = settings
        self.random = random.Random(settings.seed)  # noqa: S311 - repeatable chaos, not cryptography
        self.run_id = f"{int(time.time())}{self.random.randrange(1000):03d}"
        self.log_dir = log_dir / self.run_id
        self.prefix = f"{QUEUE_PREFIX}{self.run_id}-"
        self.database_url = database_url
        self.write = write
        self.tally = Tally()
        self.processes: list[ManagedProcess] = []
        self.workers: list[ManagedProcess] = []
        self.relays: list[ManagedProcess] = []
        self.proxy: TcpProxy | None = None
        self.posting_done = threading.Event()
        # Set when the run stops early (Ctrl-C, SIGTERM): no more faults, no more restarts.
        self.aborted = threading.Event()

    # --- the run ------------------------------------------------------------
    def run(self) -> "Reconciliation":
        try:
            self._start_stack()
            stock_before = self._restock()
            orders = self._plan_orders()
            self.write(
                f"Run {self.run_id} (seed {self.settings.seed}): {len(orders)} orders, "
                f"{self.settings.workers} workers, logs in {self.log_dir}"
            )
            faults = threading.Thread(target=self._inject_faults, args=(len(orders),), name="faults")
            copier = threading.Thread(target=self._copy_messages, name="copier")
            faults.start()
            copier.start()
            self._post_all(orders)
            self.posting_done.set()
            faults.join()
            copier.join()
            self._wait_for_drain()
            return self._reconcile(orders, stock_before)
        except BaseException:
            self.aborted.set()
            raise
        finally:
            self.posting_done.set()
            self._stop_stack()

    def _start_stack(self) -> None:
        sqs, self.sqs_endpoint = components.sqs_server(log_dir=self.log_dir)
        self.processes.append(sqs)
        self.proxy = TcpProxy(target_port=int(self.sqs_endpoint.rsplit(":", 1)[1])).start()
        self.env = components.local_environment(
            **STACK_ENVIRONMENT,
            SQS_QUEUE_PREFIX=self.prefix,
            AWS_ENDPOINT_URL_SQS=self.proxy.url,
            DATABASE_URL=_with_application_name(self.database_url),
            DJANGO_SECRET_KEY=secrets.token_urlsafe(32),
        )
        self.sqs, self.sns = (
            components.boto3_client(service, endpoint_url=self.sqs_endpoint, env=self.env) for service in ("sqs", "sns")
        )
        self.queue_url = f"{self.sqs_endpoint}/{LOCAL_ACCOUNT_ID}/{self.prefix}orders"
        self.dead_letter_url = f"{self.queue_url}-dlq"
        components.manage("setup_queues", env=self.env)
        components.manage("migrate", "--no-input", env=self.env)
        self.events_url = self._subscribe_to_events()
        for number in range(self.settings.relays):
            self.relays.append(self._start_relay(f"chaos-relay-{number}"))
        for number in range(self.settings.workers):
            self.workers.append(self._start_worker(f"chaos-worker-{number}"))
        self.web_port = free_port()
        self.processes.append(components.web_server(env=self.env, log_dir=self.log_dir, port=self.web_port))

    def _start_worker(self, name: str) -> ManagedProcess:
        worker = components.celery_worker(
            name=name, env={**self.env, **components.WORKER_ENVIRONMENT}, log_dir=self.log_dir
        )
        self.processes.append(worker)
        return worker

    def _start_relay(self, name: str) -> ManagedProcess:
        relay = components.outbox_relay(name=name, env=self.env, log_dir=self.log_dir)
        self.processes.append(relay)
        return relay

    def _subscribe_to_events(self) -> str:
        """An SQS queue subscribed to the order-events topic: what a downstream consumer receives."""
        url = self.sqs.create_queue(QueueName=f"{self.prefix}order-events-audit")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        topic_arn = f"arn:aws:sns:{self.env['AWS_DEFAULT_REGION']}:{LOCAL_ACCOUNT_ID}:{self.prefix}order-events"
        self.sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
        return url

    def _stop_stack(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        for process in reversed(self.processes):
            process.stop()

    def _restock(self) -> dict[str, int]:
        # Rows an aborted run left unsent would never be published (their queues are gone): drop them.
        OutboxMessage.objects.pending().filter(destination__contains=QUEUE_PREFIX).delete()
        for sku, stock in PRODUCTS.items():
            product_restock(sku=sku, name=f"Chaos {sku[-1]}", stock=stock)
        return dict(PRODUCTS)

    def _plan_orders(self) -> list[tuple[str, str, int]]:
        return [
            (f"chaos-{self.run_id}-{number}", self.random.choice(list(PRODUCTS)), self.random.randint(1, 3))
            for number in range(self.settings.orders)
        ]

    # --- clients ------------------------------------------------------------
    def _post_all(self, orders: list[tuple[str, str, int]]) -> None:
        jobs = orders[:]
        # A repost comes a little after the first post, as a client's retry does.
        for order in self.random.sample(orders, math.ceil(len(orders) * self.settings.repost_share)):
            jobs.insert(min(len(jobs), jobs.index(order) + self.random.randint(1, 50)), order)
        self.total_posts = len(jobs)
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="client") as pool:
            for done, _ in enumerate(pool.map(self._post_until_accepted, jobs), start=1):
                if done % 100 == 0:
                    self._progress(f"posted {done}/{len(jobs)}")

    def _post_until_accepted(self, order: tuple[str, str, int]) -> None:
        order_id, item, quantity = order
        body = json.dumps({"order_id": order_id, "item": item, "quantity": quantity}).encode()
        deadline = time.monotonic() + 180
        delay = 0.5
        while True:
            status = self._post(body)
            with self.tally.lock:
                self.tally.posts[status] += 1
                if status == 202:
                    self.tally.accepted.add(order_id)
            if status == 202 or (400 <= status < 500) or time.monotonic() > deadline:
                return
            # 503 (SQS away), 500 (database away) or no answer: a client retries.
            time.sleep(delay)
            delay = min(delay * 2, 4)

    def _post(self, body: bytes) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.web_port}/api/orders/", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - our local web server
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return 0

    def _copy_messages(self) -> None:
        """Send task messages again, by hand, as SQS does when it redelivers.

        The copies are taken from the outbox (the very bodies the relay sent),
        not received from the queue: receiving would count towards the
        messages' maxReceiveCount and push them to the dead-letter queue.
        """
        while self.tally.messages_copied < self.settings.duplicated_messages and not self.posting_done.is_set():
            sent = OutboxMessage.objects.filter(destination=f"{self.prefix}orders", sent_at__isnull=False)
            bodies = list(sent.order_by("?").values_list("body", flat=True)[:5])
            for body in bodies:
                self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body)
            self.tally.messages_copied += len(bodies)
            time.sleep(0.5)

    # --- faults -------------------------------------------------------------
    def _inject_faults(self, orders: int) -> None:
        """Faults at set points of the posting; those not reached by its end happen right after."""
        schedule = sorted(
            _spread(self.settings.worker_kills, 0.1, 0.9, self._kill_a_worker)
            + _spread(self.settings.relay_kills, 0.2, 0.8, self._kill_a_relay)
            + [(0.33, self._sqs_outage), (0.66, self._database_outage)],
            key=lambda planned: planned[0],
        )
        for share, fault in schedule:
            while not self.posting_done.is_set() and self._posted_share() < share:
                time.sleep(0.2)
            if self.aborted.is_set():
                return
            try:
                fault()
            except Exception as exc:  # noqa: BLE001 - reported as a mismatch: the run did not do what it says
                self.tally.fault_errors.append(f"{fault.__name__}: {exc}")
                self._progress(f"fault {fault.__name__} failed: {exc}")

    def _posted_share(self) -> float:
        with self.tally.lock:
            return sum(self.tally.posts.values()) / max(1, getattr(self, "total_posts", 1))

    def _kill_a_worker(self) -> None:
        self._kill_and_restart(self.workers, self._start_worker)
        self.tally.worker_kills += 1

    def _kill_a_relay(self) -> None:
        self._kill_and_restart(self.relays, self._start_relay)
        self.tally.relay_kills += 1

    def _kill_and_restart(self, group: list[ManagedProcess], start) -> None:
        index = self.random.randrange(len(group))
        victim = group[index]
        victim.kill()
        self._progress(f"SIGKILLed {victim.name} (pid {victim.pid}), restarting it")
        group[index] = start(victim.name)

    def _sqs_outage(self) -> None:
        self._progress(f"SQS unreachable for {self.settings.outage_seconds:g}s")
        self.proxy.block()
        time.sleep(self.settings.outage_seconds)
        self.proxy.unblock()
        self.tally.outages += 1
        self._progress("SQS back")

    def _database_outage(self) -> None:
        """Kill the stack's database connections, and refuse new ones for three seconds."""
        with connections_refused(connection.settings_dict) as maintenance:
            killed = terminate_connections(
                maintenance, database=connection.settings_dict["NAME"], application_name=APPLICATION_NAME
            )
            self.tally.database_connections_killed += killed
            self._progress(f"killed {killed} database connection(s); refusing new ones for 3s")
            time.sleep(3)

    # --- the end ------------------------------------------------------------
    def _wait_for_drain(self) -> None:
        deadline = time.monotonic() + self.settings.drain_timeout
        while time.monotonic() < deadline:
            in_queue = self._queue_depth(self.queue_url)
            in_outbox = OutboxMessage.objects.pending().count()
            stored = self._orders().count()
            self._progress(
                f"draining: {stored}/{len(self.tally.accepted)} orders stored, {in_outbox} in the outbox, "
                f"{in_queue} in the queue"
            )
            if in_queue == 0 and in_outbox == 0 and stored >= len(self.tally.accepted):
                return
            time.sleep(5)
        self.write(f"The queue did not drain within {self.settings.drain_timeout:g}s")

    def _queue_depth(self, url: str) -> int:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        names.append("ApproximateNumberOfMessagesDelayed")
        attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        return sum(int(attributes[name]) for name in names)

    def _dead_lettered_order_ids(self) -> list[str]:
        """The order_id of each message in the DLQ, read without consuming it."""
        order_ids, handles = [], []
        while messages := self.sqs.receive_message(
            QueueUrl=self.dead_letter_url, MaxNumberOfMessages=10, VisibilityTimeout=30, WaitTimeSeconds=1
        ).get("Messages", []):
            order_ids += [task_message_from_body(message["Body"]).order_id for message in messages]
            handles += [message["ReceiptHandle"] for message in messages]
        for handle in handles:
            self.sqs.change_message_visibility(QueueUrl=self.dead_letter_url, ReceiptHandle=handle, VisibilityTimeout=0)
        if order_ids:
            self._progress(f"dead-lettered order ids: {', '.join(order_ids)}")
        return order_ids

    def _received_events(self) -> list[dict]:
        """Every event the subscriber's queue got, duplicates included."""
        events = []
        while messages := self.sqs.receive_message(
            QueueUrl=self.events_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", []):
            events += [json.loads(message["Body"]) for message in messages]
            self.sqs.delete_message_batch(
                QueueUrl=self.events_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
        return events

    def _orders(self):
        return Order.objects.filter(order_id__startswith=f"chaos-{self.run_id}-")

    def _reconcile(self, orders, stock_before: dict[str, int]) -> "Reconciliation":
        stored = set(self._orders().values_list("order_id", flat=True))
        by_status = dict(self._orders().values_list("status").annotate(count=Count("id")))
        processed = dict(
            self._orders().processed().values_list("item").annotate(total=Sum("quantity")).values_list("item", "total")
        )
        stock_after = dict(Product.objects.filter(sku__in=PRODUCTS).values_list("sku", "stock"))
        worker_logs = "".join(path.read_text(errors="replace") for path in self.log_dir.glob("chaos-worker-*.log"))
        dead_order_ids = self._dead_lettered_order_ids()
        events = self._received_events()
        processed_ids = self._orders().processed().values_list("order_id", flat=True)
        expected_events = {stable_event_id(ORDER_PROCESSED_EVENT, order_id) for order_id in processed_ids}
        received_events = {event["event_id"] for event in events if event["type"] == ORDER_PROCESSED_EVENT}
        return Reconciliation(
            run_id=self.run_id,
            orders_planned=len(orders),
            posts=dict(self.tally.posts),
            accepted=len(self.tally.accepted),
            stored=len(stored),
            missing=len(self.tally.accepted - stored),
            unexpected=len(stored - self.tally.accepted),
            by_status=by_status,
            stock={sku: (stock_before[sku] - stock_after[sku], processed.get(sku, 0) or 0) for sku in sorted(PRODUCTS)},
            dead_lettered=len(dead_order_ids),
            dead_lettered_not_applied=len(set(dead_order_ids) - stored),
            left_in_queue=self._queue_depth(self.queue_url),
            messages_copied=self.tally.messages_copied,
            duplicate_deliveries=len(re.findall(r"'created': False", worker_logs)),
            events_received=len(events),
            processed_events_distinct=len(received_events),
            processed_events_missing=len(expected_events - received_events),
            processed_events_unexpected=len(received_events - expected_events),
            worker_kills=self.tally.worker_kills,
            relay_kills=self.tally.relay_kills,
            outages=self.tally.outages,
            database_connections_killed=self.tally.database_connections_killed,
            fault_errors=self.tally.fault_errors,
        )

    def _progress(self, text: str) -> None:
        self.write(f"[{time.strftime('%H:%M:%S')}] {text}")


@dataclass
class Reconciliation:
    run_id: str
    orders_planned: int
    posts: dict
    accepted: int
    stored: int
    missing: int
    unexpected: int
    by_status: dict
    # sku -> (stock consumed, quantity of processed orders)
    stock: dict
    dead_lettered: int
    # Dead letters whose order is not in the database: lost, unless redriven.
    dead_lettered_not_applied: int
    left_in_queue: int
    messages_copied: int
    duplicate_deliveries: int
    events_received: int
    processed_events_distinct: int
    processed_events_missing: int
    processed_events_unexpected: int
    worker_kills: int
    relay_kills: int
    outages: int
    database_connections_killed: int
    fault_errors: list

    @property
    def mismatches(self) -> list[str]:
        found = []
        if self.missing:
            found.append(f"{self.missing} accepted order(s) missing")
        if self.unexpected:
            found.append(f"{self.unexpected} order(s) stored that were never accepted")
        if self.accepted != self.orders_planned:
            found.append(f"{self.orders_planned - self.accepted} order(s) never accepted")
        found += [
            f"{sku}: stock consumed {consumed} != processed {processed}"
            for sku, (consumed, processed) in self.stock.items()
            if consumed != processed
        ]
        if self.dead_lettered_not_applied:
            found.append(f"{self.dead_lettered_not_applied} dead-lettered order(s) not applied")
        if self.left_in_queue:
            found.append(f"{self.left_in_queue} message(s) left in the queue")
        if self.processed_events_missing:
            found.append(f"{self.processed_events_missing} processed order(s) never announced")
        if self.processed_events_unexpected:
            found.append(f"{self.processed_events_unexpected} order.processed event(s) for orders not processed")
        found += [f"fault not injected: {error}" for error in self.fault_errors]
        return found

    def summary(self) -> str:
        posts = ", ".join(f"{status or 'no answer'}: {count}" for status, count in sorted(self.posts.items()))
        stock = "; ".join(f"{sku} consumed {c} / processed {p}" for sku, (c, p) in self.stock.items())
        lines = [
            f"chaos run {self.run_id}",
            f"  posts: {sum(self.posts.values())} ({posts})",
            f"  unique orders accepted: {self.accepted} of {self.orders_planned}",
            f"  orders in the database: {self.stored} {self.by_status}; missing {self.missing}, "
            f"unexpected {self.unexpected}",
            f"  stock: {stock}",
            f"  dead-lettered: {self.dead_lettered} (of orders not applied: {self.dead_lettered_not_applied}); "
            f"left in the queue: {self.left_in_queue}",
            f"  SQS messages copied by hand: {self.messages_copied}; duplicate deliveries seen (no-op runs): "
            f"{self.duplicate_deliveries}",
            f"  order.processed events: {self.processed_events_distinct} distinct for "
            f"{self.by_status.get('processed', 0)} processed orders ({self.events_received} messages received "
            f"by the subscriber, duplicates included)",
            f"  faults: {self.worker_kills} worker SIGKILLs, {self.relay_kills} relay SIGKILLs, "
            f"{self.outages} SQS outage(s), "
            f"{self.database_connections_killed} database connection(s) killed",
            "  result: " + ("EXACT" if not self.mismatches else "MISMATCH: " + "; ".join(self.mismatches)),
        ]
        return "\n".join(lines)


def _spread(count: int, first: float, last: float, fault) -> list[tuple[float, object]]:
    """`count` occurrences of `fault`, evenly spread between two shares of the posting."""
    return [(first + (last - first) * number / max(1, count - 1), fault) for number in range(count)]


def _with_application_name(database_url: str) -> str:
    separator = "&" if "?" in database_url else "?"
    return f"{database_url}{separator}{urlencode({'application_name': APPLICATION_NAME})}"
