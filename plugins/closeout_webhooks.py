"""Airflow plugin: serves closeout's webhook receiver on the API server under /closeout/webhooks.

Endpoints (POST): /closeout/webhooks/toggl, /closeout/webhooks/clockify, /closeout/webhooks/stripe; GET
/closeout/webhooks/health. Point the vendors' webhook subscriptions there; secrets come from the connections'
extras (``toggl_default``: ``webhook_secret``; ``clockify_default``: ``webhook_token``; ``stripe_default``:
``webhook_secret``, a string or a list during rotation). A vendor without its secret answers 404.

The receiver shares the API server's process and event loop, so it is bounded (docs/webhooks.md): bodies
over ``CLOSEOUT_WEBHOOK_MAX_BODY_BYTES`` (1 MiB) are refused with 413 while they stream, database and
connection calls run in a small worker pool of its own with connect and statement timeouts, and a busy
pool or an unavailable warehouse answers 503 with ``Retry-After``. Limits are read when the plugin loads.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from closeout.webhooks.app import create_app


class CloseoutWebhooksPlugin(AirflowPlugin):
    name = "closeout_webhooks"
    fastapi_apps = [  # noqa: RUF012 - the attribute Airflow reads
        {"app": create_app(), "url_prefix": "/closeout/webhooks", "name": "closeout webhook receiver"},
    ]
