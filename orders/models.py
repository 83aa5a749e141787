from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

ORDER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
SKU_MAX_LENGTH = 64


class ProductQuerySet(models.QuerySet):
    def for_sku(self, sku: str) -> "ProductQuerySet":
        """Products with this SKU: zero or one, the SKU being unique."""
        return self.filter(sku=sku)


class Product(models.Model):
    sku = models.CharField(max_length=SKU_MAX_LENGTH, unique=True)
    name = models.CharField(max_length=200)
    stock = models.PositiveIntegerField(help_text="Units left to reserve; never negative.")

    objects = ProductQuerySet.as_manager()

    class Meta:
        ordering = ["sku"]
        constraints = [
            models.CheckConstraint(condition=models.Q(stock__gte=0), name="product_stock_non_negative"),
        ]

    def __str__(self):
        return f"{self.sku} ({self.stock} in stock)"


class OrderQuerySet(models.QuerySet):
    def for_order_id(self, order_id: str) -> "OrderQuerySet":
        """Orders with this idempotency key: zero or one, the key being unique."""
        return self.filter(order_id=order_id)

    def processed(self) -> "OrderQuerySet":
        """Orders whose stock was reserved."""
        return self.filter(status=Order.Status.PROCESSED)


class Order(models.Model):
    class Status(models.TextChoices):
        PROCESSED = "processed", "Processed"
        REJECTED = "rejected", "Rejected"
        CANCELLED = "cancelled", "Cancelled"

    order_id = models.CharField(
        max_length=64,
        unique=True,
        validators=[RegexValidator(ORDER_ID_PATTERN)],
        help_text="The client's idempotency key: 1-64 letters, digits, '-' or '_'.",
    )
    item = models.CharField(max_length=SKU_MAX_LENGTH, help_text="The SKU of the product ordered.")
    quantity = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices)
    reason = models.CharField(max_length=200, blank=True, help_text="Why the order was rejected.")
    task_id = models.CharField(max_length=255, blank=True, help_text="The Celery task that created the order.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    processed_at = models.DateTimeField()
    cancelled_at = models.DateTimeField(null=True, blank=True)

    objects = OrderQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(quantity__gt=0), name="order_quantity_positive"),
        ]
        indexes = [models.Index(fields=["status", "created_at"], name="order_status_created")]

    def __str__(self):
        return f"{self.order_id}: {self.quantity} x {self.item} ({self.status})"
