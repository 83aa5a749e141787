"""The JSON API: parse, delegate to a service, answer."""

import json
from functools import wraps

from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from orders import selectors, services
from orders.models import Order
from orders.schemas import InvalidOrderRequest, parse_order_request


def error_response(http_status: int, message: str, /, **details) -> JsonResponse:
    return JsonResponse({"error": message, **details}, status=http_status)


def allow_methods(*methods: str):
    """Like Django's require_http_methods, but the 405 has a JSON body."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method not in methods:
                response = error_response(405, f"Method {request.method} not allowed; use {', '.join(methods)}.")
                response["Allow"] = ", ".join(methods)
                return response
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


@csrf_exempt  # A JSON API for machine clients: no cookies, so no CSRF to guard against.
@allow_methods("POST")
def order_create(request):
    if request.content_type != "application/json":
        return error_response(415, "Content-Type must be application/json.")
    try:
        data = json.loads(request.body)
    except RequestDataTooBig:
        return error_response(413, "The request body is larger than 64 KiB.")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return error_response(400, f"The body is not valid JSON: {exc}")
    if not isinstance(data, dict):
        return error_response(400, "The body must be a JSON object.")
    try:
        order_request = parse_order_request(data)
    except InvalidOrderRequest as exc:
        return error_response(400, "Invalid order.", fields=exc.errors)
    if not selectors.product_exists(sku=order_request.item):
        return error_response(400, "Invalid order.", fields={"item": f"Unknown item {order_request.item!r}."})
    try:
        services.order_submit(request=order_request)
    except services.OrderConflict as conflict:
        return error_response(
            409,
            f"Order {conflict.order_id!r} was already submitted with a different item or quantity; "
            "use a new order_id for a new order.",
            order_id=conflict.order_id,
            status="conflict",
            submitted=conflict.stored,
            received=conflict.received,
        )
    return JsonResponse(
        {
            "order_id": order_request.order_id,
            "status": "queued",
            "status_url": _status_url(request, order_request.order_id),
        },
        status=202,
    )


@allow_methods("GET", "HEAD")
def order_detail(request, order_id: str):
    order = selectors.order_get(order_id=order_id)
    if order is not None:
        body = _order_as_json(order)
    elif (submitted := selectors.order_submitted_payload(order_id=order_id)) is not None:
        body = {**submitted, "status": "queued"}
    else:
        return error_response(404, f"No order {order_id!r}.")
    body["conflicts"] = [
        {"received": conflict.received_payload, "at": conflict.created_at.isoformat(), "source": conflict.source}
        for conflict in selectors.order_conflicts(order_id=order_id)
    ]
    return JsonResponse(body)


@csrf_exempt  # See order_create.
@allow_methods("POST")
def order_cancel(request, order_id: str):
    try:
        services.order_cancel_submit(order_id=order_id)
    except services.UnknownOrder:
        return error_response(404, f"No order {order_id!r}.")
    return JsonResponse({"order_id": order_id, "status_url": _status_url(request, order_id)}, status=202)


def _status_url(request, order_id: str) -> str:
    return request.build_absolute_uri(reverse("orders:detail", args=[order_id]))


def _order_as_json(order: Order) -> dict:
    return {
        "order_id": order.order_id,
        "item": order.item,
        "quantity": order.quantity,
        "status": order.status,
        "reason": order.reason,
        "created_at": order.created_at.isoformat(),
        "processed_at": order.processed_at.isoformat(),
        "cancelled_at": order.cancelled_at.isoformat() if order.cancelled_at else None,
    }
