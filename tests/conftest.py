"""Fixtures that start real parts: SQS queues on the local server, Celery workers, products."""

import json
import time
import urllib.request
from collections.abc import Callable

import pytest
from django.conf import settings
from django.db import connection

from broker.client import sns_client, sqs_client
from broker.queues import queues_ensure, topic_ensure
from orders.models import Product
from stack import components
from stack import postgres as stack_postgres
from stack.processes import ManagedProcess


def wait_until(predicate: Callable[[], object], *, timeout: float, message: str, interval: float = 0.2):
    """Poll `predicate` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {timeout}s: {message}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def sqs(local_sqs):
    """A boto3 SQS client for the local server."""
    return sqs_client()


@pytest.fixture
def empty_queues(local_sqs):
    """The order queue and its DLQ, new and empty, so a test sees only its own messages.

    Returns their URLs by role. PurgeQueue is allowed once a minute, and leaves
    messages that a killed worker had in flight, so the local server is reset
    (moto's reset API drops all its state) and the queues are created anew.
    """
    _, endpoint, _ = local_sqs
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10)  # noqa: S310
    queues_ensure()
    topic_ensure()
    return {
        "main": settings.SQS_QUEUE_URLS[settings.SQS_QUEUE_NAME],
        "dead_letter": settings.SQS_QUEUE_URLS[settings.SQS_DEAD_LETTER_QUEUE_NAME],
    }


def queue_depth(sqs, url: str) -> int:
    """Messages in the queue, visible or in flight."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def database_url() -> str:
    """A DATABASE_URL for the test database that this process uses, for worker processes."""
    return stack_postgres.database_url(connection.settings_dict)


@pytest.fixture
def worker_environment(transactional_db, local_sqs) -> dict[str, str]:
    """The environment of a worker process: this run's SQS server and test database."""
    return components.local_environment(DATABASE_URL=database_url())


@pytest.fixture
def started_processes():
    """Processes a test started (workers, relays); those still running are stopped afterwards."""
    started: list[ManagedProcess] = []
    yield started
    for process in reversed(started):
        process.stop()


@pytest.fixture
def start_worker(worker_environment, local_sqs, empty_queues, started_processes):
    """Starts real `celery -A project worker` processes; stops those still running afterwards.

    Call it as start_worker(name="a", ORDERS_TEST_PROCESSING_DELAY="3") to set
    environment variables for that worker alone.
    """
    _, _, log_dir = local_sqs

    def start(*, name: str = "worker", concurrency: int = 2, **environment: str) -> ManagedProcess:
        env = {**worker_environment, **environment}
        worker = components.celery_worker(name=name, env=env, log_dir=log_dir, concurrency=concurrency)
        started_processes.append(worker)
        return worker

    return start


@pytest.fixture
def start_relay(worker_environment, local_sqs, empty_queues, started_processes):
    """Starts real `manage.py relay` processes; stops those still running afterwards."""
    _, _, log_dir = local_sqs

    def start(*, name: str = "relay", **environment: str) -> ManagedProcess:
        relay = components.outbox_relay(name=name, env={**worker_environment, **environment}, log_dir=log_dir)
        started_processes.append(relay)
        return relay

    return start


@pytest.fixture
def relay(start_relay) -> ManagedProcess:
    """One outbox relay, running for the whole test."""
    return start_relay()


@pytest.fixture
def order_events(sqs, empty_queues):
    """What the relay publishes on the order-events topic, read from an SQS queue subscribed to it.

    Returns a function that drains the queue and returns every event received
    so far (duplicates included), as parsed JSON.
    """
    url = sqs.create_queue(QueueName="test-order-events-subscriber")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns_client().subscribe(
        TopicArn=settings.SNS_TOPIC_ARN, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"}
    )
    received = []

    def read() -> list[dict]:
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            received.extend(json.loads(message["Body"]) for message in messages)
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
        return received

    return read


@pytest.fixture
def products(transactional_db) -> dict[str, Product]:
    """Two products with known stock, committed so that workers see them."""
    return {
        "WIDGET": Product.objects.create(sku="WIDGET", name="Widget", stock=1_000),
        "RARE": Product.objects.create(sku="RARE", name="Rare thing", stock=3),
    }
