"""A page in the admin that shows staff how full the queues are."""

from botocore.exceptions import BotoCoreError, ClientError
from django.contrib import admin
from django.template.response import TemplateResponse

from broker.queues import queue_depths


def queue_depths_view(request):
    """Wrapped by admin_view in project/urls.py: staff only."""
    context = {**admin.site.each_context(request), "title": "SQS queues"}
    try:
        context["queues"] = queue_depths()
    except (BotoCoreError, ClientError) as exc:
        context["error"] = f"SQS could not be reached: {exc}"
    return TemplateResponse(request, "admin/broker/queues.html", context)
