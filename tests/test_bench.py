"""A small run of `manage.py bench`, so that the benchmark cannot rot. It asserts completeness, not speed."""

import json
import subprocess
import sys

import pytest

from stack import components
from tests.conftest import database_url

pytestmark = pytest.mark.worker


def test_small_benchmark_processes_every_message(transactional_db, local_sqs, tmp_path):
    report_path = tmp_path / "report.json"
    env = components.local_environment(DATABASE_URL=database_url())

    result = subprocess.run(
        [
            sys.executable, "manage.py", "bench",
            "--messages", "30", "--idle-seconds", "1", "--timeout", "60", "--json", str(report_path),
        ],
        env=env, cwd=components.PROJECT_DIR, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert report["complete"]
    assert [phase["messages"] for phase in report["phases"]] == [30, 30, 30, 30]
    assert all(phase["sqs_calls_per_message"] > 0 for phase in report["phases"])
    assert "| celery no-op task | 30 |" in result.stdout
