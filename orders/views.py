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


def error_response(status: int, message: str, **details) -> JsonResponse:
    return JsonResponse({"error": message, **details}, status=status)


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
    except services.BrokerUnavailable:
        return error_response(503, "The order queue is unreachable; the order was not accepted. Retry later.")
    status_url = request.build_absolute_uri(reverse("orders:detail", args=[order_request.order_id]))
    return JsonResponse({"order_id": order_request.order_id, "status_url": status_url}, status=202)


@allow_methods("GET", "HEAD")
def order_detail(request, order_id: str):
    order = selectors.order_get(order_id=order_id)
    if order is None:
        return error_response(404, f"No processed order {order_id!r} (yet).")
    return JsonResponse(_order_as_json(order))


def _order_as_json(order: Order) -> dict:
    return {
        "order_id": order.order_id,
        "item": order.item,
        "quantity": order.quantity,
        "status": order.status,
        "reason": order.reason,
        "created_at": order.created_at.isoformat(),
        "processed_at": order.processed_at.isoformat(),
    }
