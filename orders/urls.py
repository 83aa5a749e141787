from django.urls import path

from orders import views

app_name = "orders"

urlpatterns = [
    path("orders/", views.order_create, name="create"),
    path("orders/<str:order_id>/", views.order_detail, name="detail"),
    path("orders/<str:order_id>/cancel/", views.order_cancel, name="cancel"),
]
