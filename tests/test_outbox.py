"""The transactional outbox and its relay, events on SNS, conflicts and cancellation, through real parts."""

import time
from datetime import timedelta

import pytest
from celery import current_app
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_celery_results.models import TaskResult

from broker.client import sns_client
from idempotency.models import IdempotencyConflict
from orders.models import Order, Product
from orders.services import CANCEL_ORDER_TASK, PROCESS_ORDER_TASK
from outbox.models import OutboxMessage
from outbox.relay import Publisher, outbox_cleanup, relay_batch
from tests.conftest import queue_depth, wait_until
from tests.test_delivery import REDELIVERY_TIMEOUT, post_order, wait_for_empty_queue, wait_for_orders


def distinct_events(events: list[dict], event_type: str) -> set[str]:
    return {event["event_id"] for event in events if event["type"] == event_type}


def test_relay_publishes_in_batches_of_ten_and_marks_rows_sent(client, products, sqs, empty_queues):
    for number in range(25):
        post_order(client, f"batched-{number}")
    publisher = Publisher()
    calls = []
    publisher.sqs.meta.events.register("before-call.sqs.*", lambda event_name, **_: calls.append(event_name))

    result = relay_batch(publisher, limit=100)

    assert (result.published, result.failed) == (25, 0)
    assert calls == ["before-call.sqs.SendMessageBatch"] * 3
    assert not OutboxMessage.objects.pending().exists()
    assert queue_depth(sqs, empty_queues["main"]) == 25


def test_a_failing_destination_backs_off_without_holding_up_the_others(client, products, sqs, empty_queues):
    # Given events that cannot be published (the topic is gone) and order tasks that can.
    for number in range(3):
        post_order(client, f"mixed-{number}")
    for _ in range(3):
        OutboxMessage.objects.create(channel="sns", destination=settings.SNS_TOPIC_ARN, body="{}")
    sns_client().delete_topic(TopicArn=settings.SNS_TOPIC_ARN)
    publisher = Publisher()
    calls = []
    publisher.sns.meta.events.register("before-call.sns.*", lambda event_name, **_: calls.append(event_name))

    first = relay_batch(publisher, limit=100)
    second = relay_batch(publisher, limit=100)

    # Then the tasks went out, the events failed once and now wait out their backoff.
    assert (first.published, first.failed) == (3, 3)
    assert (second.published, second.failed) == (0, 0)
    assert calls == ["before-call.sns.PublishBatch"]
    assert queue_depth(sqs, empty_queues["main"]) == 3
    waiting = OutboxMessage.objects.pending()
    assert waiting.count() == 3
    assert all(row.attempts == 1 and row.next_attempt_at and row.last_error for row in waiting)


def test_sent_rows_are_deleted_after_the_retention_period(products, settings):
    old, recent = timezone.now() - timedelta(days=8), timezone.now() - timedelta(days=1)
    for sent_at in (old, recent, None):
        OutboxMessage.objects.create(channel="sqs", destination="x", body="{}", sent_at=sent_at)

    assert outbox_cleanup() == 1
    assert OutboxMessage.objects.filter(sent_at=old).count() == 0
    assert OutboxMessage.objects.count() == 2


@pytest.mark.worker
@pytest.mark.skipif(connection.vendor != "postgresql", reason="SKIP LOCKED row claims need PostgreSQL")
def test_two_relays_publish_each_row_once(client, products, start_relay, sqs, empty_queues):
    for number in range(60):
        post_order(client, f"two-relays-{number}")

    start_relay(name="relay-a")
    start_relay(name="relay-b")

    wait_until(lambda: not OutboxMessage.objects.pending().exists(), timeout=30, message="outbox drained")
    time.sleep(1)
    assert queue_depth(sqs, empty_queues["main"]) == 60


@pytest.mark.worker
def test_relay_killed_between_publishing_and_marking_loses_and_doubles_nothing(
    client, products, start_relay, start_worker, sqs, empty_queues, order_events
):
    # Given a relay that pauses after publishing a batch, before marking it sent.
    for number in range(15):
        post_order(client, f"relayed-{number}", quantity=2)
    slow = start_relay(name="slow-relay", OUTBOX_TEST_DELAY_AFTER_PUBLISH="5")
    wait_until(lambda: queue_depth(sqs, empty_queues["main"]) >= 15, timeout=30, message="batch published")

    # When it is SIGKILLed in that window.
    slow.kill()
    assert OutboxMessage.objects.pending().count() == 15

    # Then another relay publishes the rows again, and the consumer absorbs the copies.
    start_relay(name="next-relay")
    worker = start_worker()
    wait_for_orders(15)
    wait_until(lambda: not OutboxMessage.objects.pending().exists(), timeout=30, message="outbox drained")
    wait_for_empty_queue(sqs, empty_queues["main"])
    assert Order.objects.count() == 15
    assert Product.objects.get(sku="WIDGET").stock == 1_000 - 30
    assert worker.log_text().count("'created': False") == 15
    wait_until(
        lambda: len(distinct_events(order_events(), "order.processed")) == 15,
        timeout=30,
        message="15 distinct order.processed events",
    )


@pytest.mark.worker
def test_each_processed_order_is_announced_once(client, products, relay, start_worker, sqs, empty_queues, order_events):
    for number in range(4):
        post_order(client, f"announced-{number}", quantity=1)
    post_order(client, "too-many", item="RARE", quantity=5)
    start_worker()
    wait_for_orders(5)
    # A copy of a processed order's message, delivered again.
    current_app.send_task(PROCESS_ORDER_TASK, kwargs={"order_id": "announced-0", "item": "WIDGET", "quantity": 1})
    wait_for_empty_queue(sqs, empty_queues["main"])
    wait_until(lambda: not OutboxMessage.objects.pending().exists(), timeout=30, message="outbox drained")

    events = wait_until(
        lambda: (found := order_events()) and len(found) >= 4 and found, timeout=30, message="events received"
    )
    processed = distinct_events(events, "order.processed")
    assert len(processed) == Order.objects.processed().count() == 4
    event = next(event for event in events if event["data"]["order_id"] == "announced-0")
    assert event["data"] == {"order_id": "announced-0", "item": "WIDGET", "quantity": 1, "status": "processed"}


@pytest.mark.worker
def test_delivery_with_another_payload_is_a_conflict_not_an_effect(
    client, products, relay, start_worker, sqs, empty_queues
):
    post_order(client, "contested", quantity=2)
    start_worker()
    wait_for_orders(1)

    # A message from elsewhere reuses the order_id with another quantity.
    rogue = current_app.send_task(PROCESS_ORDER_TASK, kwargs={"order_id": "contested", "item": "WIDGET", "quantity": 9})

    result = wait_until(
        lambda: TaskResult.objects.filter(task_id=rogue.id).first(), timeout=30, message="rogue task finished"
    )
    assert result.status == "SUCCESS"
    assert '"status": "conflict"' in result.result
    conflict = IdempotencyConflict.objects.get(key="contested")
    assert (conflict.stored_payload["quantity"], conflict.received_payload["quantity"]) == (2, 9)
    assert conflict.source == f"task:{rogue.id}"
    assert Order.objects.get(order_id="contested").quantity == 2
    assert Product.objects.get(sku="WIDGET").stock == 1_000 - 2
    assert client.get("/api/orders/contested/").json()["conflicts"][0]["received"]["quantity"] == 9


@pytest.mark.worker
def test_cancel_returns_stock_once_however_often_it_is_delivered(
    client, products, relay, start_worker, sqs, empty_queues, order_events
):
    post_order(client, "regret", quantity=6)
    start_worker()
    wait_for_orders(1)
    assert Product.objects.get(sku="WIDGET").stock == 1_000 - 6

    assert client.post("/api/orders/regret/cancel/").status_code == 202
    for _ in range(2):
        current_app.send_task(CANCEL_ORDER_TASK, kwargs={"order_id": "regret"})

    wait_until(
        lambda: Order.objects.get(order_id="regret").status == "cancelled", timeout=REDELIVERY_TIMEOUT, message="cancel"
    )
    wait_for_empty_queue(sqs, empty_queues["main"])
    assert Product.objects.get(sku="WIDGET").stock == 1_000
    assert client.get("/api/orders/regret/").json()["status"] == "cancelled"
    wait_until(lambda: distinct_events(order_events(), "order.cancelled"), timeout=30, message="cancel event")
    assert len(distinct_events(order_events(), "order.cancelled")) == 1


@pytest.mark.worker
def test_order_cancelled_before_it_is_processed_is_never_applied(
    client, products, relay, start_worker, sqs, empty_queues
):
    post_order(client, "early-regret", quantity=6)
    client.post("/api/orders/early-regret/cancel/")
    # The cancel overtakes the order: it is processed first, then the order.
    wait_until(lambda: not OutboxMessage.objects.pending().exists(), timeout=30, message="outbox drained")
    messages = sqs.receive_message(QueueUrl=empty_queues["main"], MaxNumberOfMessages=10, WaitTimeSeconds=2)
    bodies = [message["Body"] for message in messages["Messages"]]
    for message in messages["Messages"]:
        sqs.delete_message(QueueUrl=empty_queues["main"], ReceiptHandle=message["ReceiptHandle"])
    for body in reversed(bodies):
        sqs.send_message(QueueUrl=empty_queues["main"], MessageBody=body)

    start_worker(concurrency=1)
    wait_for_empty_queue(sqs, empty_queues["main"])

    order = Order.objects.get(order_id="early-regret")
    assert order.status == "cancelled"
    # moto hands out a standard queue's messages in order, so the cancel ran first.
    assert order.reason == "cancelled before it was processed"
    assert Product.objects.get(sku="WIDGET").stock == 1_000


def test_relay_leaves_rows_of_other_environments_alone(products):
    # Another SQS_QUEUE_PREFIX sharing this database: not our queue, not our topic.
    foreign = OutboxMessage.objects.create(channel="sqs", destination="staging-orders", body="{}")

    result = relay_batch(Publisher(), limit=100)

    assert (result.published, result.failed) == (0, 0)
    foreign.refresh_from_db()
    assert foreign.sent_at is None and foreign.attempts == 0
