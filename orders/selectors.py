"""Reads that views and commands share."""

from orders.models import Order, Product


def order_get(*, order_id: str) -> Order | None:
    """The order with this idempotency key, or None if no worker has created it yet."""
    return Order.objects.for_order_id(order_id).first()


def product_exists(*, sku: str) -> bool:
    """Whether a product with this SKU is on sale."""
    return Product.objects.for_sku(sku).exists()
