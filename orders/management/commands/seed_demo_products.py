from django.core.management.base import BaseCommand

from orders.services import product_ensure

DEMO_PRODUCTS = [
    ("WIDGET-1", "Widget", 1000),
    ("GADGET-1", "Gadget", 500),
    ("GIZMO-1", "Gizmo", 10),
]


class Command(BaseCommand):
    help = "Create a few demo products (existing ones are left as they are)."

    def handle(self, *args, **options):
        for sku, name, stock in DEMO_PRODUCTS:
            product = product_ensure(sku=sku, name=name, stock=stock)
            self.stdout.write(str(product))
