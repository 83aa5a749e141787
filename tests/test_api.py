"""The HTTP API: valid orders are queued on the real local SQS; bad input gets a clear 4xx."""

import json
import urllib.request

import pytest
from django.conf import settings
from django.db import connection

from broker.messages import task_message_from_body
from idempotency.models import IdempotencyConflict
from orders.schemas import MAX_QUANTITY
from outbox.models import OutboxMessage
from stack import components
from stack.postgres import connections_refused
from stack.processes import free_port
from tests.conftest import database_url

URL = "/api/orders/"


def post_json(client, body, content_type="application/json"):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(URL, data=data, content_type=content_type)


def valid_order(**changes):
    return {"order_id": "order-1", "item": "WIDGET", "quantity": 2, **changes}


def test_valid_order_is_accepted_and_its_task_written_to_the_outbox(client, products):
    response = post_json(client, valid_order())

    assert response.status_code == 202
    assert response.json() == {
        "order_id": "order-1",
        "status": "queued",
        "status_url": "http://testserver/api/orders/order-1/",
    }
    (message,) = OutboxMessage.objects.pending()
    assert (message.channel, message.destination) == ("sqs", settings.SQS_QUEUE_NAME)
    assert task_message_from_body(message.body).order_id == "order-1"
    assert client.get("/api/orders/order-1/").json() == {**valid_order(), "status": "queued", "conflicts": []}


def test_same_order_posted_again_is_accepted_again_and_queued_once(client, products):
    assert post_json(client, valid_order()).status_code == 202
    assert post_json(client, valid_order()).status_code == 202
    assert OutboxMessage.objects.count() == 1


def test_same_order_id_with_another_payload_is_a_conflict(client, products):
    post_json(client, valid_order(quantity=2))

    response = post_json(client, valid_order(quantity=3))

    assert response.status_code == 409
    body = response.json()
    assert "different item or quantity" in body["error"]
    assert (body["status"], body["submitted"]["quantity"], body["received"]["quantity"]) == ("conflict", 2, 3)
    assert OutboxMessage.objects.count() == 1
    status = client.get("/api/orders/order-1/").json()
    assert status["quantity"] == 2
    assert [conflict["received"]["quantity"] for conflict in status["conflicts"]] == [3]
    assert IdempotencyConflict.objects.get().source == "api"


def test_cancelling_a_submitted_order_queues_a_cancel_task(client, products):
    post_json(client, valid_order())

    response = client.post("/api/orders/order-1/cancel/")

    assert response.status_code == 202
    tasks = [task_message_from_body(message.body).task for message in OutboxMessage.objects.pending()]
    assert tasks == ["orders.process_order", "orders.cancel_order"]


def test_cancelling_an_unknown_order_is_a_404(client, db):
    response = client.post("/api/orders/never-seen/cancel/")

    assert response.status_code == 404
    assert "never-seen" in response.json()["error"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"item": "WIDGET", "quantity": 1}, "order_id", id="missing-order-id"),
        pytest.param(valid_order(extra=1), "extra", id="extra-field"),
        pytest.param(valid_order(quantity="2"), "quantity", id="quantity-as-string"),
        pytest.param(valid_order(quantity=2.5), "quantity", id="quantity-as-float"),
        pytest.param(valid_order(quantity=True), "quantity", id="quantity-as-bool"),
        pytest.param(valid_order(quantity=None), "quantity", id="quantity-null"),
        pytest.param(valid_order(quantity=0), "quantity", id="quantity-zero"),
        pytest.param(valid_order(quantity=-3), "quantity", id="quantity-negative"),
        pytest.param(valid_order(quantity=MAX_QUANTITY + 1), "quantity", id="quantity-absurd"),
        pytest.param(valid_order(quantity=10**30), "quantity", id="quantity-huge"),
        pytest.param(valid_order(order_id=""), "order_id", id="order-id-empty"),
        pytest.param(valid_order(order_id="a" * 65), "order_id", id="order-id-too-long"),
        pytest.param(valid_order(order_id="no spaces/or slashes"), "order_id", id="order-id-bad-characters"),
        pytest.param(valid_order(order_id=42), "order_id", id="order-id-not-a-string"),
        pytest.param(valid_order(item="NOPE"), "item", id="unknown-item"),
        pytest.param(valid_order(item=""), "item", id="item-empty"),
    ],
)
def test_invalid_order_is_refused_with_the_field_named(client, products, body, field):
    response = post_json(client, body)

    assert response.status_code == 400
    assert response.json()["error"] == "Invalid order."
    assert field in response.json()["fields"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        pytest.param("{not json", id="malformed"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
        pytest.param(" ", id="blank"),
        pytest.param("[1, 2]", id="array"),
        pytest.param('"a string"', id="string"),
    ],
)
def test_body_that_is_not_a_json_object_is_refused(client, body):
    response = post_json(client, body)

    assert response.status_code == 400
    assert response.json()["error"]


@pytest.mark.django_db
def test_wrong_content_type_is_refused(client):
    response = post_json(client, json.dumps(valid_order()), content_type="text/plain")

    assert response.status_code == 415
    assert "application/json" in response.json()["error"]


@pytest.mark.django_db
def test_body_over_64_kib_is_refused(client):
    response = post_json(client, valid_order(padding="x" * 70_000))

    assert response.status_code == 413
    assert "64 KiB" in response.json()["error"]


@pytest.mark.django_db
def test_wrong_method_gets_a_json_405(client):
    response = client.get(URL)

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert "POST" in response.json()["error"]


@pytest.mark.django_db
def test_unknown_order_is_a_json_404(client):
    response = client.get(f"{URL}never-seen/")

    assert response.status_code == 404
    assert "never-seen" in response.json()["error"]


def test_orders_are_accepted_while_sqs_is_unreachable(products, local_sqs):
    # A real web server whose SQS endpoint is a port where nothing listens:
    # the order waits in the outbox, so the client still gets its 202.
    _, _, log_dir = local_sqs
    web_port, closed_port = free_port(), free_port()
    env = components.local_environment(
        DATABASE_URL=database_url(),
        AWS_ENDPOINT_URL_SQS=f"http://127.0.0.1:{closed_port}",
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
    )
    web = components.web_server(env=env, log_dir=log_dir, port=web_port)
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{web_port}{URL}",
            data=json.dumps(valid_order()).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - a local http URL we built
            status, body = response.status, json.loads(response.read())
    finally:
        web.stop()

    assert (status, body["status"]) == (202, "queued")
    assert OutboxMessage.objects.pending().count() == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="makes PostgreSQL refuse connections")
def test_database_outage_gives_503(client, products):
    # The view's product lookup needs a new connection, which the database refuses.
    connection.close()
    with connections_refused(connection.settings_dict):
        response = post_json(client, valid_order())

    assert response.status_code == 503
    assert "database is unavailable" in response.json()["error"]
