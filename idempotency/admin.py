"""Staff look at what ran once and at refused conflicts; nobody edits them."""

from django.contrib import admin

from idempotency.models import IdempotencyConflict, IdempotencyKey


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(ReadOnlyAdmin):
    list_display = ["scope", "key", "created_at", "result"]
    list_filter = ["scope", "created_at"]
    search_fields = ["key"]


@admin.register(IdempotencyConflict)
class IdempotencyConflictAdmin(ReadOnlyAdmin):
    list_display = ["scope", "key", "source", "created_at", "stored_payload", "received_payload"]
    list_filter = ["scope", "created_at"]
    search_fields = ["key"]
