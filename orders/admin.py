"""Staff look at orders and stock here; only workers write orders."""

from django.contrib import admin

from idempotency.admin import ReadOnlyAdmin
from orders.models import Order, Product


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["sku", "name", "stock"]
    list_editable = ["stock"]
    search_fields = ["sku", "name"]

    def get_readonly_fields(self, request, obj=None):
        # Orders refer to products by SKU: renaming one would orphan them.
        return ["sku"] if obj else []


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = ["order_id", "item", "quantity", "status", "created_at", "processed_at", "cancelled_at"]
    list_filter = ["status", "created_at", "processed_at"]
    search_fields = ["order_id", "item"]
    date_hierarchy = "created_at"
