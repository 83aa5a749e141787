"""Run the whole local system: `python -m stack` (what `bin/run` does).

Local SQS (moto's server mode, unless AWS_ENDPOINT_URL_SQS names another
server), queues and topic, migrations, demo products, the outbox relay,
Celery workers (one by default) and the web server on 127.0.0.1:8000. Ctrl-C stops everything it started.
"""

import argparse
import os
import signal
import sys
import time

from stack import components
from stack.processes import ProcessFailed

LOG_DIR = components.PROJECT_DIR / "var" / "log"


def _debug_by_default() -> dict[str, str]:
    # A local quick start: DEBUG on (dev secret key, admin static files) unless set.
    return {} if "DJANGO_DEBUG" in os.environ else {"DJANGO_DEBUG": "true"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8000, help="web server port (default 8000)")
    parser.add_argument("--workers", type=int, default=1, help="Celery worker processes (default 1)")
    args = parser.parse_args()

    # Ctrl-C, or SIGINT/SIGTERM from a supervisor, stops the stack; SIGINT is
    # set explicitly because a shell starting us in the background ignores it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    started = []
    try:
        env = components.local_environment(**_debug_by_default())
        if not env.get("AWS_ENDPOINT_URL_SQS"):
            sqs, env["AWS_ENDPOINT_URL_SQS"] = components.sqs_server(log_dir=LOG_DIR)
            started.append(sqs)
        print(f"SQS endpoint: {env['AWS_ENDPOINT_URL_SQS']}", flush=True)
        components.manage("setup_queues", env=env)
        components.manage("migrate", "--no-input", env=env)
        components.manage("seed_demo_products", env=env)
        started.append(components.outbox_relay(env=env, log_dir=LOG_DIR))
        for number in range(args.workers):
            started.append(components.celery_worker(name=f"worker{number or ''}", env=env, log_dir=LOG_DIR))
        started.append(components.web_server(env=env, log_dir=LOG_DIR, port=args.port))
        print(f"Running: http://127.0.0.1:{args.port}/api/orders/ and /admin/ (logs in {LOG_DIR}). Ctrl-C stops.")
        while all(process.is_running() for process in started):
            time.sleep(0.5)
        stopped = next(process for process in started if not process.is_running())
        print(f"{stopped.name} exited; stopping the stack. See {stopped.log_path}", file=sys.stderr)
        return 1
    except ProcessFailed as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for process in reversed(started):
            process.stop()


if __name__ == "__main__":
    sys.exit(main())
