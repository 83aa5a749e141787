"""The shape of an order request, checked at the API and again in the worker.

Strict: JSON types must match exactly ("5" is not a quantity) and unknown
fields are refused, so a client bug surfaces as a clear error, not as a wrong
order.
"""

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orders.models import ORDER_ID_PATTERN, SKU_MAX_LENGTH

# Above this, a quantity is a client bug rather than an order.
MAX_QUANTITY = 10_000


class InvalidOrderRequest(ValueError):
    """The payload is not an order request. Retrying cannot fix it.

    `errors` maps each bad field to what is wrong with it. The message alone
    is the exception's argument, so Celery's JSON result backend can rebuild it.
    """

    def __init__(self, message: str, *, errors: dict[str, str] | None = None):
        super().__init__(message)
        self.errors = errors or {}


class OrderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    order_id: Annotated[str, Field(pattern=ORDER_ID_PATTERN)]
    item: Annotated[str, Field(min_length=1, max_length=SKU_MAX_LENGTH)]
    quantity: Annotated[int, Field(gt=0, le=MAX_QUANTITY)]


def parse_order_request(data: Any) -> OrderRequest:
    """Return the order request in `data`, or raise InvalidOrderRequest saying what is wrong."""
    try:
        return OrderRequest.model_validate(data)
    except ValidationError as exc:
        errors = {}
        for error in exc.errors(include_url=False):
            field = ".".join(str(part) for part in error["loc"]) or "body"
            errors.setdefault(field, error["msg"])
        message = "; ".join(f"{field}: {text}" for field, text in errors.items())
        raise InvalidOrderRequest(message, errors=errors) from None
