"""The admin: staff look at orders, products, task results and queues; orders are read-only."""

import re

import pytest
from django.contrib.auth.models import User

from orders.models import Order
from orders.schemas import OrderRequest
from orders.services import order_process

PAGES = [
    "/admin/orders/order/",
    "/admin/orders/product/",
    "/admin/django_celery_results/taskresult/",
]


@pytest.fixture
def staff_client(client, db):
    client.force_login(User.objects.create_superuser("admin", "admin@example.test", "unused-password"))
    return client


@pytest.mark.parametrize("page", PAGES)
def test_staff_see_every_page(staff_client, products, page):
    order_process(request=OrderRequest(order_id="shown", item="WIDGET", quantity=1))

    assert staff_client.get(page).status_code == 200


@pytest.mark.parametrize("page", PAGES)
def test_anyone_else_is_sent_to_the_login_page(client, db, page):
    response = client.get(page)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_order_list_filters_and_searches(staff_client, products):
    order_process(request=OrderRequest(order_id="findme", item="WIDGET", quantity=1))
    order_process(request=OrderRequest(order_id="other", item="GHOST", quantity=1))

    found = staff_client.get("/admin/orders/order/", {"q": "findme"}).content.decode()
    rejected = staff_client.get("/admin/orders/order/", {"status__exact": "rejected"}).content.decode()

    assert "findme" in found and ">other<" not in found
    assert ">other<" in rejected and "findme" not in rejected


def test_orders_are_read_only_for_staff(staff_client, products):
    order_process(request=OrderRequest(order_id="frozen", item="WIDGET", quantity=1))
    order = Order.objects.get(order_id="frozen")
    page = f"/admin/orders/order/{order.pk}/change/"

    assert b'name="_save"' not in staff_client.get(page).content
    assert staff_client.post(page, {"quantity": 99}).status_code == 403
    assert staff_client.get("/admin/orders/order/add/").status_code == 403
    assert Order.objects.get(order_id="frozen").quantity == 1


def test_staff_edit_stock(staff_client, products):
    widget = products["WIDGET"]
    page = f"/admin/orders/product/{widget.pk}/change/"

    response = staff_client.post(page, {"sku": "WIDGET", "name": "Widget", "stock": 7})

    assert response.status_code == 302
    widget.refresh_from_db()
    assert widget.stock == 7


def test_staff_see_queue_depths(staff_client, sqs, empty_queues):
    sqs.send_message(QueueUrl=empty_queues["dead_letter"], MessageBody="parked")
    for _ in range(2):
        sqs.send_message(QueueUrl=empty_queues["main"], MessageBody="waiting")

    page = staff_client.get("/admin/queues/").content.decode()

    rows = {name: numbers for name, *numbers in _table_rows(page)}
    assert rows["test-orders"] == ["2", "0", "0"]
    assert rows["test-orders-dlq"] == ["1", "0", "0"]
    assert 'href="/admin/queues/"' in staff_client.get("/admin/").content.decode()


def test_queue_depths_are_for_staff_only(client, db):
    assert client.get("/admin/queues/").status_code == 302


def _table_rows(page: str) -> list[list[str]]:
    return [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        for row in re.findall(r"<tr><td.*?</tr>", page)
    ]
