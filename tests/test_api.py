"""The HTTP API: valid orders are queued on the real local SQS; bad input gets a clear 4xx."""

import json
import urllib.error
import urllib.request

import pytest
from django.db import connection

from orders.schemas import MAX_QUANTITY
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


@pytest.mark.django_db
def test_valid_order_is_accepted_and_queued_on_sqs(client, products, sqs, empty_queues):
    response = post_json(client, valid_order())

    assert response.status_code == 202
    assert response.json() == {"order_id": "order-1", "status_url": "http://testserver/api/orders/order-1/"}
    received = sqs.receive_message(QueueUrl=empty_queues["main"], WaitTimeSeconds=2, MaxNumberOfMessages=10)
    assert len(received["Messages"]) == 1


@pytest.mark.django_db
def test_same_order_posted_again_is_accepted_again(client, products, empty_queues):
    assert post_json(client, valid_order()).status_code == 202
    assert post_json(client, valid_order()).status_code == 202


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


def test_unreachable_sqs_gives_503(products, local_sqs):
    # A real web server whose SQS endpoint is a port where nothing listens.
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
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(request, timeout=60)  # noqa: S310 - a local http URL we built
    finally:
        web.stop()

    assert error.value.code == 503
    assert "unreachable" in json.loads(error.value.read())["error"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="makes PostgreSQL refuse connections")
def test_database_outage_gives_503(client, products):
    # The view's product lookup needs a new connection, which the database refuses.
    connection.close()
    with connections_refused(connection.settings_dict):
        response = post_json(client, valid_order())

    assert response.status_code == 503
    assert "database is unavailable" in response.json()["error"]
