"""Order use cases: the only code that writes orders and stock.

The lifecycle: an order request is accepted and `queued` (order_submit), then
a worker makes it `processed` or `rejected` (order_process), and it may be
`cancelled` (order_cancel). Each step runs once per order_id through
idempotency.run_once, and every message it causes (the task to run next, the
event to announce) is an outbox row written in the same transaction.
"""

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from idempotency.core import record_conflict, run_once, stored_payload
from idempotency.fingerprints import fingerprint
from orders.models import Order, Product
from orders.schemas import OrderRequest
from outbox.messages import enqueue_event, enqueue_task, stable_event_id

logger = logging.getLogger(__name__)

# Task names are part of the message format on the queue: never rename them.
PROCESS_ORDER_TASK = "orders.process_order"
CANCEL_ORDER_TASK = "orders.cancel_order"
# Event types are what subscribers of the SNS topic filter on.
ORDER_PROCESSED_EVENT = "order.processed"
ORDER_CANCELLED_EVENT = "order.cancelled"
# The idempotency scopes of the three steps.
SUBMIT_SCOPE = "orders.submit"
PROCESS_SCOPE = "orders.process"
CANCEL_SCOPE = "orders.cancel"


class OrderConflict(Exception):
    """The order_id was first used with another payload; this one was refused and recorded."""

    def __init__(self, order_id: str, *, stored: Any, received: Any):
        super().__init__(f"order {order_id!r} was submitted before with a different item or quantity")
        self.order_id = order_id
        self.stored = stored
        self.received = received


class UnknownOrder(Exception):
    """No order was ever submitted with this order_id. Retrying cannot fix it."""


@dataclass(frozen=True)
class ProcessingOutcome:
    order_id: str
    status: str
    # False when this delivery found the order already handled: a no-op.
    created: bool

    def as_dict(self) -> dict:
        return asdict(self)


def order_submit(*, request: OrderRequest) -> bool:
    """Accept an order request: record it and queue its processing, in one transaction.

    Returns True the first time, False for a repeat with the same payload (a
    client retry), which changes nothing. A repeat with another payload raises
    OrderConflict and is recorded. Works while SQS is unreachable: the task
    message waits in the outbox until the relay publishes it.
    """
    payload = request.model_dump()
    outcome = run_once(
        scope=SUBMIT_SCOPE,
        key=request.order_id,
        payload=payload,
        effect=lambda: enqueue_task(task_name=PROCESS_ORDER_TASK, kwargs=payload).deduplication_id,
        source="api",
    )
    if outcome.conflict:
        raise OrderConflict(request.order_id, stored=outcome.stored_payload, received=payload)
    return outcome.first


def order_process(*, request: OrderRequest, task_id: str = "") -> ProcessingOutcome:
    """Apply an order exactly once, however often it is delivered.

    In one transaction: create the order row on its unique order_id; only if
    this call created it, reserve the stock (or reject the order if the SKU is
    unknown or the stock short) and add an `order.processed` event to the
    outbox. A later delivery changes nothing. Two concurrent deliveries cannot
    both apply it (see idempotency.run_once). A delivery whose payload differs
    from the one submitted is recorded as a conflict and not applied. A
    database error rolls everything back, so retrying is safe.
    """
    payload = request.model_dump()
    source = f"task:{task_id}"
    submitted = stored_payload(scope=SUBMIT_SCOPE, key=request.order_id)
    if submitted is not None and fingerprint(submitted) != fingerprint(payload):
        record_conflict(
            scope=PROCESS_SCOPE, key=request.order_id, stored_payload=submitted, received_payload=payload, source=source
        )
        return ProcessingOutcome(order_id=request.order_id, status="conflict", created=False)
    outcome = run_once(
        scope=PROCESS_SCOPE,
        key=request.order_id,
        payload=payload,
        effect=lambda: _apply_order(request, task_id=task_id),
        source=source,
    )
    status = "conflict" if outcome.conflict else outcome.result["status"]
    if not outcome.first:
        logger.info("Order %s already handled (%s); delivery ignored", request.order_id, status)
    return ProcessingOutcome(order_id=request.order_id, status=status, created=outcome.first)


def order_cancel_submit(*, order_id: str) -> None:
    """Queue the cancellation of a submitted order. Raises UnknownOrder. Safe to repeat."""
    if stored_payload(scope=SUBMIT_SCOPE, key=order_id) is None and not Order.objects.for_order_id(order_id).exists():
        raise UnknownOrder(order_id)
    run_once(
        scope=f"{CANCEL_SCOPE}.submit",
        key=order_id,
        payload={"order_id": order_id},
        effect=lambda: enqueue_task(task_name=CANCEL_ORDER_TASK, kwargs={"order_id": order_id}).deduplication_id,
        source="api",
    )


def order_cancel(*, order_id: str, task_id: str = "") -> dict:
    """Cancel an order exactly once, however often it is delivered.

    Locks the order row: already cancelled, nothing happens; processed, its
    stock is returned; not yet processed, it is created cancelled, so its
    processing finds it and does nothing. Adds an `order.cancelled` event.
    Raises UnknownOrder (not retried) when the order_id was never submitted.
    """
    return run_once(
        scope=CANCEL_SCOPE,
        key=order_id,
        payload={"order_id": order_id},
        effect=lambda: _cancel_order(order_id),
        source=f"task:{task_id}",
    ).result


def _apply_order(request: OrderRequest, *, task_id: str) -> dict:
    now = timezone.now()
    order, created = Order.objects.get_or_create(
        order_id=request.order_id,
        defaults={
            "item": request.item,
            "quantity": request.quantity,
            "status": Order.Status.PROCESSED,
            "task_id": task_id,
            "created_at": now,
            "processed_at": now,
        },
    )
    if not created:
        # Cancelled before it was processed, or written before this scope existed.
        return {"status": order.status}
    _pause_for_fault_tests()
    rejection = _reserve_stock(sku=order.item, quantity=order.quantity)
    if rejection:
        order.status = Order.Status.REJECTED
        order.reason = rejection
        order.save(update_fields=["status", "reason"])
    else:
        _announce(order, ORDER_PROCESSED_EVENT)
    return {"status": order.status}


def _cancel_order(order_id: str) -> dict:
    order = Order.objects.select_for_update().for_order_id(order_id).first()
    if order is None:
        submitted = stored_payload(scope=SUBMIT_SCOPE, key=order_id)
        if submitted is None:
            raise UnknownOrder(order_id)
        now = timezone.now()
        order, created = Order.objects.get_or_create(
            order_id=order_id,
            defaults={
                "item": submitted["item"],
                "quantity": submitted["quantity"],
                "status": Order.Status.CANCELLED,
                "reason": "cancelled before it was processed",
                "created_at": now,
                "processed_at": now,
                "cancelled_at": now,
            },
        )
        if created:
            _announce(order, ORDER_CANCELLED_EVENT)
            return {"status": order.status, "stock_returned": 0}
        # Processing created it meanwhile: lock it and cancel it like any other.
        order = Order.objects.select_for_update().get(pk=order.pk)
    if order.status == Order.Status.CANCELLED:
        return {"status": order.status, "stock_returned": 0}
    returned = 0
    if order.status == Order.Status.PROCESSED:
        returned = order.quantity
        Product.objects.for_sku(order.item).update(stock=F("stock") + returned)
    order.status = Order.Status.CANCELLED
    order.cancelled_at = timezone.now()
    order.save(update_fields=["status", "cancelled_at"])
    _announce(order, ORDER_CANCELLED_EVENT)
    return {"status": order.status, "stock_returned": returned}


def _announce(order: Order, event_type: str) -> None:
    enqueue_event(
        event_type=event_type,
        event_id=stable_event_id(event_type, order.order_id),
        data={"order_id": order.order_id, "item": order.item, "quantity": order.quantity, "status": order.status},
        group_id=order.order_id,
    )


def _reserve_stock(*, sku: str, quantity: int) -> str:
    """Take `quantity` units of `sku` inside the caller's transaction; return why not, or "".

    One conditional UPDATE both checks and takes the stock, under the row lock
    it acquires, so concurrent orders cannot oversell. Only a refusal reads the
    row again, to say why.
    """
    if Product.objects.for_sku(sku).filter(stock__gte=quantity).update(stock=F("stock") - quantity):
        return ""
    product = Product.objects.for_sku(sku).first()
    if product is None:
        return f"unknown item {sku!r}"
    return f"insufficient stock for {sku!r}: {quantity} requested, {product.stock} available"


def _pause_for_fault_tests() -> None:
    # Holds the transaction open so a test can kill the worker inside it.
    if settings.ORDERS_TEST_PROCESSING_DELAY:
        time.sleep(settings.ORDERS_TEST_PROCESSING_DELAY)


def product_ensure(*, sku: str, name: str, stock: int) -> Product:
    """Create the product if no product has this SKU; an existing one is left as it is."""
    product, _ = Product.objects.get_or_create(sku=sku, defaults={"name": name, "stock": stock})
    return product


def product_restock(*, sku: str, name: str, stock: int) -> Product:
    """Create the product, or set the stock of the existing one to `stock`."""
    product, _ = Product.objects.update_or_create(sku=sku, defaults={"name": name, "stock": stock})
    return product
