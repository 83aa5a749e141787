"""Reads that views and commands share."""

from idempotency.core import stored_payload
from idempotency.models import IdempotencyConflict
from orders.models import Order, Product
from orders.services import PROCESS_SCOPE, SUBMIT_SCOPE


def order_get(*, order_id: str) -> Order | None:
    """The order with this idempotency key, or None if no worker has handled it yet."""
    return Order.objects.for_order_id(order_id).first()


def order_submitted_payload(*, order_id: str) -> dict | None:
    """The payload the order was accepted with, or None if it never was."""
    return stored_payload(scope=SUBMIT_SCOPE, key=order_id)


def order_conflicts(*, order_id: str) -> list[IdempotencyConflict]:
    """Requests and deliveries that reused this order_id with another payload, newest first."""
    return list(IdempotencyConflict.objects.filter(scope__in=[SUBMIT_SCOPE, PROCESS_SCOPE], key=order_id))


def product_exists(*, sku: str) -> bool:
    """Whether a product with this SKU is on sale."""
    return Product.objects.for_sku(sku).exists()
