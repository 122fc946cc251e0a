"""closeout as an Airflow provider: its connection types (with the UI form's fields) and its notifiers.

Registered through the ``apache_airflow_provider`` entry point of the installed wheel (pyproject.toml), so
``airflow providers list`` shows closeout and the connection form offers Harvest, Toggl Track, Clockify and
Stripe with the extras closeout reads. Airflow 3 reads the form description from here (``conn-fields``,
``ui-field-behaviour``) without importing the hooks. The existing ``http`` connections (DESIGN.md) keep working:
the hooks read host, password and extras, whatever the type.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

PACKAGE_NAME = "closeout"


def _version() -> str:
    try:
        return version(PACKAGE_NAME)
    except PackageNotFoundError:  # copied folders: no distribution metadata
        return "0.0.0"


def _field(label: str, description: str, kind: str = "string", *, secret: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": [kind, "null"]}
    if secret:
        schema["format"] = "password"
    return {"label": label, "description": description, "schema": schema}


_RETRY = _field("Retry policy (JSON)", "Overrides of the retry policy, e.g. {\"attempts\": 5}.", "object")

CONNECTION_TYPES: list[dict[str, Any]] = [
    {
        "connection-type": "harvest",
        "hook-class-name": "closeout.provider_hooks.HarvestConnectionHook",
        "hook-name": "Harvest (closeout)",
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port"],
            "relabeling": {"host": "API base URL", "login": "Account ID", "password": "Personal access token"},
            "placeholders": {"host": "https://api.harvestapp.com", "login": "123456"},
        },
        "conn-fields": {
            "account_id": _field("Account ID", "Harvest-Account-Id header; the login field is used when empty."),
            "per_page": _field("Page size", "Records per page (at most 2000).", "integer"),
            "max_requests": _field("Requests per window", "Harvest allows 100 requests per 15 s.", "integer"),
            "per_seconds": _field("Window (seconds)", "Length of the rate-limit window.", "number"),
            "user_agent": _field("User-Agent", "Harvest asks for an app name and a contact address."),
            "retry": _RETRY,
        },
    },
    {
        "connection-type": "toggl",
        "hook-class-name": "closeout.provider_hooks.TogglConnectionHook",
        "hook-name": "Toggl Track (closeout)",
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port", "login"],
            "relabeling": {"host": "API base URL", "password": "API token"},
            "placeholders": {"host": "https://api.track.toggl.com"},
        },
        "conn-fields": {
            "workspace_id": _field("Workspace ID", "The Toggl Track workspace synced."),
            "requests_per_hour": _field("Requests per hour", "The plan's hourly API quota (240 on free).", "integer"),
            "short_term": _field("Short-term limit", "[requests, seconds], default [3, 3].", "array"),
            "page_size": _field("Report page size", "Rows per Reports API page.", "integer"),
            "retry": _RETRY,
        },
    },
    {
        "connection-type": "clockify",
        "hook-class-name": "closeout.provider_hooks.ClockifyConnectionHook",
        "hook-name": "Clockify (closeout)",
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port", "login"],
            "relabeling": {"host": "API base URL", "password": "API key"},
            "placeholders": {"host": "https://api.clockify.me/api"},
        },
        "conn-fields": {
            "workspace_id": _field("Workspace ID", "The Clockify workspace synced."),
            "reports_url": _field("Reports URL", "Reports API base URL (regional or self-hosted instances)."),
            "limit": _field("Plan limit", "'paid' or 'free': picks the request rate.", "string"),
            "max_requests": _field("Requests per window", "Overrides the plan's request limit.", "integer"),
            "per_seconds": _field("Window (seconds)", "Length of the rate-limit window.", "number"),
            "page_size": _field("Report page size", "Rows per Reports API page.", "integer"),
            "retry": _RETRY,
        },
    },
    {
        "connection-type": "stripe",
        "hook-class-name": "closeout.provider_hooks.StripeConnectionHook",
        "hook-name": "Stripe (closeout)",
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port", "login"],
            "relabeling": {"host": "API base URL", "password": "Secret key"},
            "placeholders": {"host": "https://api.stripe.com"},
        },
        "conn-fields": {
            "webhook_secret": _field(
                "Webhook signing secret", "whsec_... of the endpoint (a JSON list during rotation).", secret=True
            ),
            "max_network_retries": _field("Network retries", "Retries by the Stripe SDK.", "integer"),
            "timeout": _field("Timeout (seconds)", "Per request.", "number"),
            "concurrency": _field("Concurrency", "Parallel requests while publishing.", "integer"),
            "key_prefix": _field("Idempotency key prefix", "Distinguishes installations sharing an account."),
        },
    },
    {
        "connection-type": "quickbooks",
        "hook-class-name": "closeout.accounting.api.quickbooks.QuickBooksConnectionHook",
        "hook-name": "QuickBooks Online (closeout)",
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port"],
            "relabeling": {"host": "API base URL", "login": "OAuth client ID", "password": "OAuth client secret"},
            "placeholders": {"host": "https://quickbooks.api.intuit.com"},
        },
        "conn-fields": {
            "realm_id": _field("Company ID (realm ID)", "The QuickBooks company the tokens open."),
            "refresh_token": _field(
                "First refresh token", "From connecting the company; closeout keeps the rotated ones.", secret=True
            ),
            "token_url": _field("Token URL", "Default https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer."),
            "minorversion": _field("Minor version", "75 or later (the default).", "integer"),
            "requests_per_minute": _field("Requests per minute", "Intuit allows 500 per company.", "integer"),
            "batch_requests_per_minute": _field("Batch requests per minute", "Intuit allows 40.", "integer"),
            "max_concurrent": _field("Concurrent requests", "Intuit allows 10.", "integer"),
        },
    },
    {
        "connection-type": "xero",
        "hook-class-name": "closeout.accounting.api.xero.XeroConnectionHook",
        "hook-name": "Xero (closeout)",
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port"],
            "relabeling": {"host": "API base URL", "login": "OAuth client ID", "password": "OAuth client secret"},
            "placeholders": {"host": "https://api.xero.com"},
        },
        "conn-fields": {
            "tenant_id": _field("Tenant ID", "The organisation (xero-tenant-id, from GET /connections)."),
            "refresh_token": _field(
                "First refresh token", "From connecting the organisation; closeout keeps the rotated ones.", secret=True
            ),
            "token_url": _field("Token URL", "Default https://identity.xero.com/connect/token."),
            "calls_per_minute": _field("Calls per minute", "Xero allows 60 per organisation.", "integer"),
            "calls_per_day": _field("Calls per day", "Xero allows 5,000 per organisation.", "integer"),
            "max_concurrent": _field("Concurrent calls", "Xero allows 5.", "integer"),
            "batch_size": _field("Elements per write", "Xero recommends about 50.", "integer"),
        },
    },
]

NOTIFIERS = ["closeout.alerts.notifier.FailureNotifier", "closeout.alerts.notifier.CauseResolver"]


def get_provider_info() -> dict[str, Any]:
    """The provider description Airflow validates against its ``provider_info.schema.json``."""
    return {
        "package-name": PACKAGE_NAME,
        "name": "closeout",
        "description": "Time-to-cash for Airflow 3: tracker sync, invoices, Stripe, journals, reconciliation, payouts.",
        "versions": [_version()],
        "integrations": [
            {"integration-name": name, "tags": ["service"]} for name in ("Harvest", "Toggl Track", "Clockify", "Stripe")
        ],
        "hooks": [
            {"integration-name": "closeout", "python-modules": ["closeout.provider_hooks"]},
        ],
        "connection-types": CONNECTION_TYPES,
        "notifications": NOTIFIERS,
    }
