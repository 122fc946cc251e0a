"""Airflow plugin: serves closeout's webhook receiver on the API server under /closeout/webhooks.

Endpoints (POST): /closeout/webhooks/toggl, /closeout/webhooks/clockify, /closeout/webhooks/stripe.
Point the vendors' webhook subscriptions there; secrets come from the connections' extras
(``toggl_default``: ``webhook_secret``; ``clockify_default``: ``webhook_token``; ``stripe_default``:
``webhook_secret``, a string or a list during rotation).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from closeout.webhooks.app import create_app


class CloseoutWebhooksPlugin(AirflowPlugin):
    name = "closeout_webhooks"
    fastapi_apps = [  # noqa: RUF012 - the attribute Airflow reads
        {"app": create_app(), "url_prefix": "/closeout/webhooks", "name": "closeout webhook receiver"},
    ]
