"""Hook classes behind closeout's own connection types (``harvest``, ``toggl``, ``clockify``, ``stripe``).

The provider registry (``closeout.provider``) names one hook class per connection type and reads its
``conn_type``/``hook_name``. The working hooks keep ``conn_type = "http"`` (DESIGN.md: ``harvest_default`` and
friends may be plain HTTP connections), so these subclasses only add the dedicated type: a connection of
either type works with the same hook, and nothing else changes.
"""

from __future__ import annotations

from closeout.payments.hook import StripeHook
from closeout.trackers.clockify.hook import ClockifyHook
from closeout.trackers.harvest.hook import HarvestHook
from closeout.trackers.toggl.hook import TogglHook


class HarvestConnectionHook(HarvestHook):
    """Harvest v2 API: host = API base URL, password = personal access token, extra ``account_id``."""

    conn_type = "harvest"
    hook_name = "Harvest (closeout)"


class TogglConnectionHook(TogglHook):
    """Toggl Track API v9 and Reports API v3: password = API token, extra ``workspace_id``."""

    conn_type = "toggl"
    hook_name = "Toggl Track (closeout)"


class ClockifyConnectionHook(ClockifyHook):
    """Clockify API v1: password = API key, extras ``workspace_id`` and ``reports_url``."""

    conn_type = "clockify"
    hook_name = "Clockify (closeout)"


class StripeConnectionHook(StripeHook):
    """Stripe API: password = secret key, extra ``webhook_secret``."""

    conn_type = "stripe"
    hook_name = "Stripe (closeout)"
