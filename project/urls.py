from django.contrib import admin
from django.urls import include, path

from broker.views import queue_depths_view

urlpatterns = [
    path("admin/queues/", admin.site.admin_view(queue_depths_view), name="admin-queues"),
    path("admin/", admin.site.urls),
    path("api/", include("orders.urls")),
]
