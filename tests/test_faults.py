"""Faults that happen in production, through real parts: racing workers, long tasks,
killed and stopped workers, an SQS outage, a database outage.

Each test ends with the exactly-once check: one order per order_id, and stock
decremented by exactly the processed orders' quantities.
"""

import os
import signal
import time

import pytest
from django.db import connection
from django_celery_results.models import TaskResult

from orders.models import Order, Product
from stack.postgres import connections_refused, terminate_connections
from stack.processes import child_pids
from stack.tcp_proxy import TcpProxy
from tests.conftest import queue_depth
from tests.test_delivery import (
    REDELIVERY_TIMEOUT,
    assert_stock_matches_processed_orders,
    post_order,
    wait_for_empty_queue,
    wait_for_orders,
)

pytestmark = pytest.mark.worker


def copy_message(sqs, queue_url: str, copies: int) -> None:
    """Send `copies` more copies of the one message in the queue, as SQS does when it redelivers."""
    message = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=5)["Messages"][0]
    for _ in range(copies):
        sqs.send_message(QueueUrl=queue_url, MessageBody=message["Body"])
    sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)


def received_count(*workers) -> int:
    return sum(worker.log_text().count("] received") for worker in workers)


def test_two_workers_running_copies_of_one_message_at_once_apply_it_once(
    client, products, relay, start_worker, sqs, empty_queues
):
    # Given four copies of one order's message, and two workers that each hold
    # the order's transaction open for two seconds, so their runs overlap.
    post_order(client, "raced", quantity=6)
    copy_message(sqs, empty_queues["main"], copies=3)
    first = start_worker(name="first", ORDERS_TEST_PROCESSING_DELAY="2")
    second = start_worker(name="second", ORDERS_TEST_PROCESSING_DELAY="2")

    wait_for_empty_queue(sqs, empty_queues["main"])

    # Then both took part, one order was created, and no run failed: the losers
    # of the unique-constraint race found the order instead.
    assert received_count(first) >= 1 and received_count(second) >= 1
    assert Order.objects.filter(order_id="raced").count() == 1
    assert Product.objects.get(sku="WIDGET").stock == 1_000 - 6
    logs = first.log_text() + second.log_text()
    assert logs.count("'created': True") == 1
    assert logs.count("'created': False") == 3
    assert not TaskResult.objects.filter(status="FAILURE").exists()


def test_task_longer_than_the_visibility_timeout_is_received_once(
    client, products, relay, start_worker, sqs, empty_queues
):
    # Given a queue whose visibility timeout (5 s) is far shorter than the task (15 s),
    # and two idle workers that would take the message as soon as it reappears.
    sqs.set_queue_attributes(QueueUrl=empty_queues["main"], Attributes={"VisibilityTimeout": "5"})
    long_task = {"ORDERS_TEST_PROCESSING_DELAY": "15", "TASK_TIME_LIMIT": "20", "SQS_VISIBILITY_TIMEOUT": "30"}
    workers = [start_worker(name=name, **long_task) for name in ("one", "two")]

    post_order(client, "slow-order", quantity=2)
    wait_for_orders(1, timeout=45)
    wait_for_empty_queue(sqs, empty_queues["main"])

    # Then the heartbeat kept it hidden: received once, processed once.
    assert received_count(*workers) == 1
    assert Product.objects.get(sku="WIDGET").stock == 1_000 - 2


def test_pool_process_killed_mid_task_returns_the_message(client, products, relay, start_worker, sqs, empty_queues):
    # A generous time limit, so that only the kill can end the task.
    worker = start_worker(
        concurrency=1, ORDERS_TEST_PROCESSING_DELAY="3", TASK_TIME_LIMIT="20", SQS_VISIBILITY_TIMEOUT="30"
    )
    post_order(client, "child-killed", quantity=5)
    worker.wait_for_log("] received", timeout=30)
    time.sleep(1)

    # When the pool process running the task is SIGKILLed (an OOM kill, say).
    (child,) = child_pids(worker.pid)
    os.kill(child, signal.SIGKILL)

    # Then the worker reports it, the message comes back, and a new pool process applies it once.
    worker.wait_for_log("WorkerLostError", timeout=30)
    wait_for_orders(1, timeout=REDELIVERY_TIMEOUT + 20)
    wait_for_empty_queue(sqs, empty_queues["main"])
    assert Order.objects.filter(order_id="child-killed").count() == 1
    assert Product.objects.get(sku="WIDGET").stock == 1_000 - 5


def test_warm_shutdown_mid_task_finishes_the_task(client, products, relay, start_worker, sqs, empty_queues):
    worker = start_worker(concurrency=1, ORDERS_TEST_PROCESSING_DELAY="3")
    post_order(client, "warm-stop", quantity=2)
    worker.wait_for_log("] received", timeout=30)

    # When the worker's main process alone gets SIGTERM (Celery's warm shutdown).
    worker.popen.send_signal(signal.SIGTERM)
    worker.popen.wait(timeout=30)

    # Then the running task finished and was acked before the worker exited.
    assert Order.objects.filter(order_id="warm-stop").count() == 1
    assert queue_depth(sqs, empty_queues["main"]) == 0
    assert Product.objects.get(sku="WIDGET").stock == 1_000 - 2


def test_sigterm_to_the_whole_process_group_mid_task_loses_nothing(
    client, products, relay, start_worker, sqs, empty_queues
):
    worker = start_worker(name="stopped", concurrency=1, ORDERS_TEST_PROCESSING_DELAY="3")
    post_order(client, "group-stop", quantity=2)
    worker.wait_for_log("] received", timeout=30)

    # When a supervisor sends SIGTERM to every process of the worker (as systemd
    # does): the pool process dies at once, mid-transaction.
    worker.signal_group(signal.SIGTERM)
    worker.popen.wait(timeout=30)

    # Then the message comes back and another worker applies the order once.
    start_worker(name="next")
    wait_for_orders(1, timeout=REDELIVERY_TIMEOUT)
    wait_for_empty_queue(sqs, empty_queues["main"])
    assert Order.objects.filter(order_id="group-stop").count() == 1
    assert Product.objects.get(sku="WIDGET").stock == 1_000 - 2


def test_orders_are_accepted_and_workers_ride_out_an_sqs_outage(
    client, products, start_relay, start_worker, sqs, empty_queues, local_sqs
):
    # Given a relay and two workers that reach SQS through a proxy we can take down.
    _, endpoint, _ = local_sqs
    proxy = TcpProxy(target_port=int(endpoint.rsplit(":", 1)[1])).start()
    try:
        start_relay(AWS_ENDPOINT_URL_SQS=proxy.url)
        workers = [start_worker(name=name, AWS_ENDPOINT_URL_SQS=proxy.url) for name in ("left", "right")]
        for number in range(10):
            post_order(client, f"before-{number}")
        wait_for_orders(10)

        # When SQS is unreachable for 15 s while orders keep arriving (and are accepted).
        proxy.block()
        for number in range(10):
            post_order(client, f"during-{number}")
            time.sleep(1.5)
        # The orders posted meanwhile were accepted, and wait in the outbox.
        assert client.get("/api/orders/during-9/").json()["status"] == "queued"
        proxy.unblock()
        for number in range(10):
            post_order(client, f"after-{number}")

        # Then the same workers reconnect by themselves and every order is applied once.
        wait_for_orders(30, timeout=90)
        wait_for_empty_queue(sqs, empty_queues["main"], timeout=60)
        assert all(worker.is_running() for worker in workers)
        assert any("Receiving from" in worker.log_text() for worker in workers), "the outage went unnoticed"
    finally:
        proxy.stop()
    assert Order.objects.count() == 30
    assert_stock_matches_processed_orders(products)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="kills PostgreSQL backends")
def test_database_outage_mid_task_is_retried_and_applied_once(client, products, relay, start_worker, sqs, empty_queues):
    worker = start_worker(concurrency=1, ORDERS_TEST_PROCESSING_DELAY="2")
    post_order(client, "db-outage", quantity=4)
    worker.wait_for_log("] received", timeout=30)
    time.sleep(0.5)

    # When the worker's connection is killed mid-transaction, and the database
    # then refuses new connections for a few seconds.
    with connections_refused(connection.settings_dict) as maintenance:
        terminate_connections(
            maintenance,
            database=connection.settings_dict["NAME"],
            keep_pid=connection.cursor().connection.info.backend_pid,
        )
        time.sleep(4)

    # Then the task retries with backoff and succeeds once the database is back.
    wait_for_orders(1, timeout=60)
    wait_for_empty_queue(sqs, empty_queues["main"])
    assert "Retry in" in worker.log_text()
    assert Order.objects.filter(order_id="db-outage").count() == 1
    assert Product.objects.get(sku="WIDGET").stock == 1_000 - 4
