"""order_process, called directly: the exactly-once rules without the broker."""

import threading

import pytest
from django.db import connection

from orders.models import Order, Product
from orders.schemas import OrderRequest
from orders.services import order_process


def process(order_id: str, item: str = "WIDGET", quantity: int = 1, task_id: str = "task-1"):
    return order_process(request=OrderRequest(order_id=order_id, item=item, quantity=quantity), task_id=task_id)


def test_first_delivery_creates_the_order_and_reserves_stock(products):
    outcome = process("o-1", quantity=5)

    assert outcome.as_dict() == {"order_id": "o-1", "status": "processed", "created": True}
    order = Order.objects.get(order_id="o-1")
    assert (order.item, order.quantity, order.task_id) == ("WIDGET", 5, "task-1")
    assert Product.objects.get(sku="WIDGET").stock == 995


def test_redelivery_changes_nothing(products):
    process("o-1", quantity=5)

    outcome = process("o-1", quantity=5, task_id="task-2")

    assert outcome.as_dict() == {"order_id": "o-1", "status": "processed", "created": False}
    assert Order.objects.get(order_id="o-1").task_id == "task-1"
    assert Product.objects.get(sku="WIDGET").stock == 995


def test_short_stock_rejects_the_order_and_leaves_stock_alone(products):
    outcome = process("o-big", item="RARE", quantity=4)

    assert outcome.status == "rejected"
    order = Order.objects.get(order_id="o-big")
    assert "insufficient stock" in order.reason
    assert Product.objects.get(sku="RARE").stock == 3


def test_unknown_item_that_slipped_past_the_api_is_rejected(products):
    outcome = process("o-ghost", item="GHOST")

    assert outcome.status == "rejected"
    assert Order.objects.get(order_id="o-ghost").reason == "unknown item 'GHOST'"


def test_exact_remaining_stock_can_be_ordered(products):
    assert process("o-all", item="RARE", quantity=3).status == "processed"
    assert process("o-more", item="RARE", quantity=1).status == "rejected"
    assert Product.objects.get(sku="RARE").stock == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_of_one_order_apply_it_once(products):
    # Eight threads, each with its own database connection, deliver the same
    # order at the same moment: one creates it, the others find it, none fails.
    threads = 8
    barrier = threading.Barrier(threads)
    outcomes, errors = [], []

    def deliver(number: int):
        try:
            barrier.wait()
            outcomes.append(process("raced", quantity=2, task_id=f"task-{number}"))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=deliver, args=(number,)) for number in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert errors == []
    assert sorted(outcome.created for outcome in outcomes) == [False] * (threads - 1) + [True]
    assert Order.objects.filter(order_id="raced").count() == 1
    assert Product.objects.get(sku="WIDGET").stock == 998
