"""Delivery through real parts: the local SQS server, real worker processes, a shared database.

Each test says which failure of at-least-once delivery it stands for, and
checks the exactly-once effect: one order row per order_id, and stock
decremented exactly by the processed orders' quantities.
"""

import base64
import json
import time

import pytest
from celery import current_app
from django.db.models import Sum
from django_celery_results.models import TaskResult

from orders.models import Order, Product
from orders.services import PROCESS_ORDER_TASK
from tests.conftest import queue_depth, wait_until

pytestmark = pytest.mark.worker

# Time for a message to come back after its visibility timeout (6 s in tests),
# plus a long poll and a worker's start.
REDELIVERY_TIMEOUT = 40


def post_order(client, order_id: str, item: str = "WIDGET", quantity: int = 1):
    response = client.post(
        "/api/orders/",
        data=json.dumps({"order_id": order_id, "item": item, "quantity": quantity}),
        content_type="application/json",
    )
    assert response.status_code == 202, response.content
    return response


def wait_for_orders(count: int, timeout: float = REDELIVERY_TIMEOUT) -> None:
    wait_until(lambda: Order.objects.count() >= count, timeout=timeout, message=f"{count} orders processed")


def wait_for_empty_queue(sqs, url: str, timeout: float = REDELIVERY_TIMEOUT) -> None:
    wait_until(lambda: queue_depth(sqs, url) == 0, timeout=timeout, message=f"{url} drained")


def assert_stock_matches_processed_orders(products: dict[str, Product]) -> None:
    """The exactly-once effect: stock went down by exactly the processed quantities."""
    for sku, product in products.items():
        consumed = product.stock - Product.objects.get(sku=sku).stock
        processed = Order.objects.processed().filter(item=sku).aggregate(total=Sum("quantity"))["total"] or 0
        assert consumed == processed, f"{sku}: stock went down by {consumed}, processed orders total {processed}"


def test_posted_orders_are_processed_and_the_api_agrees(client, products, relay, start_worker, sqs, empty_queues):
    start_worker()

    for number in range(10):
        post_order(client, f"e2e-{number}", quantity=2)
    post_order(client, "too-many", item="RARE", quantity=5)
    wait_for_orders(11)

    for number in range(10):
        body = client.get(f"/api/orders/e2e-{number}/").json()
        assert body["status"] == "processed"
        assert body["quantity"] == 2
    rejected = client.get("/api/orders/too-many/").json()
    assert rejected["status"] == "rejected"
    assert "insufficient stock" in rejected["reason"]
    assert Product.objects.get(sku="WIDGET").stock == 1_000 - 20
    assert Product.objects.get(sku="RARE").stock == 3
    wait_for_empty_queue(sqs, empty_queues["main"])


def test_order_posted_many_times_is_applied_once(client, products, relay, start_worker, sqs, empty_queues):
    for _ in range(5):
        post_order(client, "retried-by-client", quantity=7)
    start_worker()

    wait_for_empty_queue(sqs, empty_queues["main"])
    assert Order.objects.filter(order_id="retried-by-client").count() == 1
    assert Product.objects.get(sku="WIDGET").stock == 1_000 - 7
    assert_stock_matches_processed_orders(products)


def test_copies_of_a_message_in_sqs_apply_the_order_once(client, products, relay, start_worker, sqs, empty_queues):
    # Given the very message a POST put in SQS, sent again three times: what
    # SQS does when it redelivers (the same body, the same task id).
    post_order(client, "redelivered", quantity=4)
    message = sqs.receive_message(QueueUrl=empty_queues["main"], WaitTimeSeconds=5)["Messages"][0]
    sqs.change_message_visibility(
        QueueUrl=empty_queues["main"], ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
    )
    for _ in range(3):
        sqs.send_message(QueueUrl=empty_queues["main"], MessageBody=message["Body"])

    # When a worker consumes all four copies.
    worker = start_worker()
    wait_for_empty_queue(sqs, empty_queues["main"])

    # Then one order, stock taken once, and every copy succeeded as a no-op.
    assert Order.objects.filter(order_id="redelivered").count() == 1
    assert Product.objects.get(sku="WIDGET").stock == 1_000 - 4
    log = worker.log_text()
    assert log.count("'created': True") == 1
    assert log.count("'created': False") == 3
    assert "raised unexpected" not in log


def test_worker_killed_mid_task_leaves_the_order_to_be_processed_once(
    client, products, relay, start_worker, sqs, empty_queues
):
    # Given a worker that holds the order's transaction open for a few seconds.
    # One pool process, so it has no second long poll open when it dies: the
    # server would hand the returning message to that dead connection, which
    # counts as a receive, and with maxReceiveCount 2 the message would go to
    # the DLQ instead of the survivor. (With the default of 5 that is harmless.)
    slow = start_worker(name="doomed", concurrency=1, ORDERS_TEST_PROCESSING_DELAY="3")
    post_order(client, "crash-1", quantity=3)
    slow.wait_for_log("] received", timeout=30)
    time.sleep(1)

    # When it is killed (worker and pool children, SIGKILL) inside the transaction.
    slow.kill()
    assert not Order.objects.filter(order_id="crash-1").exists()
    assert Product.objects.get(sku="WIDGET").stock == 1_000

    # Then SQS redelivers after the visibility timeout, and a new worker applies it once.
    start_worker(name="survivor")
    wait_for_orders(1)
    wait_for_empty_queue(sqs, empty_queues["main"])
    assert Order.objects.filter(order_id="crash-1").count() == 1
    assert Product.objects.get(sku="WIDGET").stock == 1_000 - 3


def test_poison_message_goes_to_the_dead_letter_queue_and_the_queue_keeps_flowing(
    client, products, relay, start_worker, sqs, empty_queues
):
    # Given a message that bypassed the API with a payload that can never be valid,
    # and a good order behind it.
    poison = current_app.send_task(PROCESS_ORDER_TASK, kwargs={"order_id": "poison", "item": "WIDGET", "quantity": -1})
    post_order(client, "behind-the-poison")

    start_worker()

    # Then the good order is processed, the failure is recorded with its reason,
    # and after maxReceiveCount (2) receives SQS parks the poison in the DLQ.
    wait_for_orders(1)
    assert Order.objects.get().order_id == "behind-the-poison"
    failure = wait_until(
        lambda: TaskResult.objects.filter(task_id=poison.id, status="FAILURE").first(),
        timeout=30,
        message="the poison task's failure recorded",
    )
    assert "quantity" in failure.result
    wait_until(
        lambda: queue_depth(sqs, empty_queues["dead_letter"]) == 1,
        timeout=REDELIVERY_TIMEOUT,
        message="poison message in the dead-letter queue",
    )
    wait_for_empty_queue(sqs, empty_queues["main"])
    assert not Order.objects.filter(order_id="poison").exists()


def test_pickle_message_is_never_executed_and_is_dead_lettered(
    client, products, relay, start_worker, sqs, empty_queues
):
    # Given a well-formed task message serialized with pickle, ahead of a JSON one.
    with current_app.producer_or_acquire() as producer:
        current_app.amqp.send_task_message(
            producer,
            PROCESS_ORDER_TASK,
            current_app.amqp.as_task_v2(
                "pickled-task", PROCESS_ORDER_TASK, kwargs={"order_id": "pickled", "item": "WIDGET", "quantity": 1}
            ),
            serializer="pickle",
        )
    post_order(client, "plain-json")

    start_worker()

    # Then only the JSON order runs; the pickle message ends in the DLQ, unexecuted.
    wait_for_orders(1)
    wait_until(
        lambda: queue_depth(sqs, empty_queues["dead_letter"]) == 1,
        timeout=REDELIVERY_TIMEOUT,
        message="pickle message in the dead-letter queue",
    )
    assert list(Order.objects.values_list("order_id", flat=True)) == ["plain-json"]
    dead = sqs.receive_message(QueueUrl=empty_queues["dead_letter"])["Messages"][0]
    assert json.loads(base64.b64decode(dead["Body"]))["content-type"] == "application/x-python-serialize"
