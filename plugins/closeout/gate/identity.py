"""Who is releasing a hold: the Airflow API server says, from the person's own token; not free text.

A finance person signs in to Airflow (the UI, or ``POST /auth/token`` with their username and password) and
hands the release command their token (env ``CLOSEOUT_AIRFLOW_TOKEN``). The command asks the API server whose
token it is (``GET /ui/auth/me``, answered only for a valid, unexpired token signed by the server) and accepts
the person only when they are in the finance group (``CLOSEOUT_FINANCE_APPROVERS``, the same list that approves
payout batches). The database then refuses the person who caused the hold, and anyone whose database login is
not in ``closeout_finance``.
"""

from __future__ import annotations

import os

import requests

from closeout.payouts.approval import APPROVERS_ENV, finance_approvers

TOKEN_ENV = "CLOSEOUT_AIRFLOW_TOKEN"  # noqa: S105 - the name of the env variable, not a secret
URL_ENV = "CLOSEOUT_AIRFLOW_URL"


class IdentityError(RuntimeError):
    """The person could not be identified, or is not allowed to decide."""


def api_url() -> str:
    """The API server: env CLOSEOUT_AIRFLOW_URL, else the host of the ``airflow_api`` connection."""
    if os.environ.get(URL_ENV):
        return os.environ[URL_ENV].rstrip("/")
    from closeout.gate.airflow_api import AirflowApiHook

    try:
        return AirflowApiHook().base_url.rstrip("/")
    except Exception as exc:
        raise IdentityError(f"set {URL_ENV} (or the airflow_api connection) to the Airflow API server") from exc


def whoami(token: str, url: str | None = None, *, timeout: float = 30.0) -> str:
    """The Airflow user id the token belongs to, as the API server reports it."""
    if not token or not token.strip():
        raise IdentityError(f"no Airflow token: sign in to Airflow and put your token in {TOKEN_ENV}")
    base = url or api_url()
    try:
        response = requests.get(f"{base}/ui/auth/me", headers={"Authorization": f"Bearer {token.strip()}"},
                                timeout=timeout)  # fmt: skip
    except requests.RequestException as exc:
        raise IdentityError(f"cannot reach the Airflow API server at {base}: {type(exc).__name__}") from None
    if response.status_code in (401, 403):
        raise IdentityError(f"the Airflow API server at {base} does not accept this token (HTTP "
                            f"{response.status_code}): sign in again")  # fmt: skip
    if not response.ok:
        raise IdentityError(f"GET {base}/ui/auth/me answered HTTP {response.status_code}")
    user = str(response.json().get("id") or "").strip()
    if not user:
        raise IdentityError("the Airflow API server answered without a user id")
    return user


def finance_person(token: str, url: str | None = None) -> str:
    """The identified person, refused unless they are in the finance group."""
    user = whoami(token, url)
    if user.lower() not in {u.lower() for u in finance_approvers()}:
        raise IdentityError(f"Airflow user {user} is not in the finance group ({APPROVERS_ENV})")
    return user
