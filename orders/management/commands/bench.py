import json
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from stack.bench import Bench, BenchSettings, format_report
from stack.postgres import database_url
from stack.processes import stop_on_sigterm


class Command(BaseCommand):
    help = (
        "Measure, in one run against one SQS endpoint (AWS_ENDPOINT_URL_SQS, or a local server it starts): "
        "raw boto3, a no-op Celery task, the order task, and the full HTTP pipeline; prints a table and writes JSON. "
        "Exits 1 if any message was not processed."
    )
    # It starts and configures its own stack; this process's settings give the database.
    requires_system_checks = []

    def add_arguments(self, parser):
        defaults = BenchSettings()
        parser.add_argument("--messages", type=int, default=defaults.messages, help="per measurement")
        parser.add_argument("--idle-seconds", type=float, default=defaults.idle_seconds)
        parser.add_argument(
            "--large-table", type=int, default=defaults.large_table, help="existing orders to compare with (PostgreSQL)"
        )
        parser.add_argument("--timeout", type=float, default=defaults.timeout, help="seconds per measurement, at most")
        parser.add_argument("--json", help="where to write the JSON report (default var/bench/<time>.json)")

    def handle(self, *args, messages, idle_seconds, large_table, timeout, json: str | None, **options):
        stop_on_sigterm()
        if large_table and connection.vendor != "postgresql":
            raise CommandError("--large-table needs PostgreSQL: set DATABASE_URL=postgres://...")
        bench = Bench(
            BenchSettings(messages=messages, idle_seconds=idle_seconds, large_table=large_table, timeout=timeout),
            endpoint=settings.AWS_ENDPOINT_URL_SQS,
            database_url=database_url(connection.settings_dict),
            log_dir=settings.BASE_DIR / "var" / "bench",
            write=self.stdout.write,
        )
        report = bench.run()
        path = json or str(bench.log_dir / "report.json")
        with open(path, "w") as out:
            out.write(_dumps(report))
        self.stdout.write(format_report(report))
        self.stdout.write(f"JSON report: {path}")
        if not report["complete"]:
            self.stderr.write("Not every message was processed: see the table.")
            sys.exit(1)


def _dumps(report: dict) -> str:
    return json.dumps(report, indent=2)
