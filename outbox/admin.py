from django.contrib import admin

from idempotency.admin import ReadOnlyAdmin
from outbox.models import OutboxMessage


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdmin):
    list_display = ["id", "channel", "destination", "deduplication_id", "created_at", "sent_at", "attempts"]
    list_filter = ["channel", ("sent_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["deduplication_id"]
