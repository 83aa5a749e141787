"""Order use cases: the only code that writes orders and stock."""

import logging
import time
from dataclasses import asdict, dataclass

from botocore.exceptions import BotoCoreError, ClientError
from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerOperationalError

from orders.models import Order, Product
from orders.schemas import OrderRequest

logger = logging.getLogger(__name__)

# The task's name is part of the message format on the queue: never rename it.
PROCESS_ORDER_TASK = "orders.process_order"


class BrokerUnavailable(Exception):
    """SQS could not be reached; the order was not queued."""


@dataclass(frozen=True)
class ProcessingOutcome:
    order_id: str
    status: str
    # False when this delivery found the order already processed: a no-op.
    created: bool

    def as_dict(self) -> dict:
        return asdict(self)


def order_submit(*, request: OrderRequest) -> str:
    """Queue `request` for processing and return the task id.

    Safe to call again with the same order_id (a client retry): every copy is
    delivered at least once, and processing applies the order only once.
    Raises BrokerUnavailable when SQS cannot be reached.
    """
    try:
        result = current_app.send_task(PROCESS_ORDER_TASK, kwargs=request.model_dump())
    except (BrokerOperationalError, BotoCoreError, ClientError) as exc:
        raise BrokerUnavailable(str(exc)) from exc
    return result.id


def order_process(*, request: OrderRequest, task_id: str = "") -> ProcessingOutcome:
    """Apply an order exactly once, however often it is delivered.

    In one transaction: create the order row on its unique order_id; only if
    this call created it, reserve the stock (or reject the order if the SKU is
    unknown or the stock short). A later delivery finds the row and changes
    nothing. Two concurrent deliveries cannot both create it: the unique
    constraint makes the loser's insert fail, and get_or_create then reads the
    winner's committed row (READ COMMITTED on PostgreSQL; SQLite serialises
    the transactions). A database error rolls everything back, so retrying is
    safe.
    """
    now = timezone.now()
    with transaction.atomic():
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
            logger.info("Order %s already processed; delivery ignored", order.order_id)
            return ProcessingOutcome(order_id=order.order_id, status=order.status, created=False)
        _pause_for_fault_tests()
        rejection = _reserve_stock(sku=order.item, quantity=order.quantity)
        if rejection:
            order.status = Order.Status.REJECTED
            order.reason = rejection
            order.save(update_fields=["status", "reason"])
    return ProcessingOutcome(order_id=order.order_id, status=order.status, created=True)


def _reserve_stock(*, sku: str, quantity: int) -> str:
    """Take `quantity` units of `sku` inside the caller's transaction; return why not, or ""."""
    product = Product.objects.select_for_update().for_sku(sku).first()
    if product is None:
        return f"unknown item {sku!r}"
    if product.stock < quantity:
        return f"insufficient stock for {sku!r}: {quantity} requested, {product.stock} available"
    Product.objects.filter(pk=product.pk).update(stock=F("stock") - quantity)
    return ""


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
