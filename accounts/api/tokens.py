"""Personal API tokens: making, checking, listing and revoking them.

A secret is ``sy_`` + 43 random URL-safe characters (256 bits). Only its SHA-256 is stored; a plain hash (not a
slow password hash) is enough because the secret is random, not chosen by a person, and it lets a request find
its token with one indexed lookup.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from accounts.models import ApiToken, User
from accounts.permissions import account_is_usable
from audit.services import audit_record

SECRET_PREFIX = "sy_"  # noqa: S105 (a marker that tells the secret apart, not a secret)
#: A token's last use is written at most this often, so that a busy script does not write on every call.
LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_TOKENS_PER_USER = 20


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class NewToken:
    """A token just made, with its secret: the only moment the secret exists outside the caller's hands."""

    token: ApiToken
    secret: str


# --- reads -------------------------------------------------------------------------------------------------------


def tokens_of_user(user: User) -> QuerySet[ApiToken]:
    """A person's own tokens, newest first (nobody lists anybody else's, not even an admin)."""
    if not account_is_usable(user):
        return ApiToken.objects.none()
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-id")


def token_get_for_user(*, user: User, pk: int) -> ApiToken:
    token = tokens_of_user(user).filter(pk=pk).first()
    if token is None:
        raise Http404("No such token.")
    return token


def token_is_live(token: ApiToken) -> bool:
    return token.revoked_at is None and token.expires_at > timezone.now()


# --- writes ------------------------------------------------------------------------------------------------------


@transaction.atomic
def token_create(*, user: User, name: str, days: int, ip_address: str | None = None) -> NewToken:
    """Make a token valid for ``days`` days (1..SOYANG_API_TOKEN_MAX_DAYS). Returns the secret once."""
    if not account_is_usable(user):
        raise PermissionDenied("Your account is not approved.")
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": ["Give the token a name, e.g. the script that will use it."]})
    if len(name) > 100:
        raise ValidationError({"name": ["A token name has at most 100 characters."]})
    max_days = settings.SOYANG_API_TOKEN_MAX_DAYS
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= max_days:
        raise ValidationError({"days": [f"A token is valid for 1 to {max_days} days."]})
    # Lock the user row so that two concurrent creations cannot both pass the count below.
    User.objects.select_for_update().filter(pk=user.pk).first()
    live = ApiToken.objects.filter(user=user, revoked_at__isnull=True, expires_at__gt=timezone.now()).count()
    if live >= MAX_TOKENS_PER_USER:
        raise ValidationError(f"You already have {live} valid tokens; revoke one you no longer use first.")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=secret[:10],
        secret_hash=_hash(secret),
        expires_at=timezone.now() + timedelta(days=days),
    )
    audit_record(
        action="api_token_create",
        actor=user,
        obj=token,
        ip_address=ip_address,
        detail={"name": name, "expires_at": token.expires_at.isoformat()},
    )
    return NewToken(token=token, secret=secret)


@transaction.atomic
def token_revoke(*, token: ApiToken, by: User, ip_address: str | None = None) -> ApiToken:
    """Revoke one of ``by``'s own tokens (revoking twice is not an error; the first time is recorded)."""
    if token.user_id != by.pk:
        raise PermissionDenied("You may revoke only your own tokens.")
    updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    token.refresh_from_db()
    if updated:
        audit_record(action="api_token_revoke", actor=by, obj=token, ip_address=ip_address)
    return token


def tokens_revoke_all(
    *, user: User, reason: str, by: User | None = None, ip_address: str | None = None, detail: dict | None = None
) -> int:
    """Revoke every live token of ``user`` (their role changed, say): one audit event names the reason and how
    many were revoked. Call it inside the transaction of the change that requires it. Returns the number."""
    revoked = ApiToken.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=timezone.now())
    if revoked:
        audit_record(
            action="api_tokens_revoke_all",
            actor=by,
            obj=user,
            ip_address=ip_address,
            detail={"reason": reason, "tokens": revoked, **(detail or {})},
        )
    return revoked


def token_authenticate(*, secret: str) -> ApiToken | None:
    """The live token of an approved account with this secret, or None. Marks its last use (at most once a
    minute: a conditional update, so concurrent requests do not contend).

    Using a token is not an audit event (every call would be one): what the call does is audited by the service
    it reaches, with the token's user as the actor.
    """
    if not secret.startswith(SECRET_PREFIX) or len(secret) > 100:
        return None
    token = ApiToken.objects.select_related("user").filter(secret_hash=_hash(secret)).first()
    if token is None or not token_is_live(token) or not account_is_usable(token.user):
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
