"""Who is calling: the identity API Gateway's JWT authorizer verified, as the functions read it.

The HTTP API's JWT authorizer (template.yaml) checks the token's signature, issuer, audience and expiry before any
function runs, and passes its claims in `requestContext.authorizer.jwt`. The functions trust those claims and
nothing else: a customer is the token's `sub` (never a body field); an admin is a member of the user pool's
"admin" group (`cognito:groups`) or holds the `converge/admin` scope (another issuer's tokens). A request without
claims (a function invoked behind a misconfigured route, or through `sam local start-api`, which does not run JWT
authorizers) is refused with 401 by the functions themselves.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ADMIN_SCOPE = "converge/admin"
ADMIN_GROUP = "admin"
# The OpenAPI security requirements a route declares (Powertools' `security=`): they are both its documentation
# and its enforcement (converge.http refuses a customer on an ADMIN_ONLY route with 403 before validating anything).
SECURITY_SCHEME = "jwt"
ANY_CALLER: list[dict[str, list[str]]] = [{SECURITY_SCHEME: []}]
ADMIN_ONLY: list[dict[str, list[str]]] = [{SECURITY_SCHEME: [ADMIN_GROUP]}]
# The ids a customer can have (the project's Identifier): a Cognito sub is a UUID.
SUBJECT = re.compile(r"[A-Za-z0-9_.:-]{1,64}")  # fullmatch: `$` would let a trailing newline through


@dataclass(frozen=True)
class Caller:
    subject: str  # the customer's id
    admin: bool


def _words(value: Any) -> list[str]:
    """A claim holding several values: a JSON list, or API Gateway's rendering of one ("[a b]" or "[a, b]")."""
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, str):
        return [w for w in re.split(r"[\s,]+", value.strip().removeprefix("[").removesuffix("]")) if w]
    return []


def caller_of(event: Mapping[str, Any]) -> Caller | None:
    """The verified caller of an HTTP API v2 event, or None if it carries no usable JWT claims."""
    context = event.get("requestContext")
    authorizer = context.get("authorizer") if isinstance(context, Mapping) else None
    jwt = authorizer.get("jwt") if isinstance(authorizer, Mapping) else None
    claims = jwt.get("claims") if isinstance(jwt, Mapping) else None
    if not isinstance(claims, Mapping):
        return None
    subject = claims.get("sub")
    if not isinstance(subject, str) or not SUBJECT.fullmatch(subject):
        return None
    scopes = {*_words(jwt.get("scopes")), *_words(claims.get("scope"))}  # type: ignore[union-attr]
    groups = set(_words(claims.get("cognito:groups")))
    return Caller(subject=subject, admin=ADMIN_SCOPE in scopes or ADMIN_GROUP in groups)


def roles_required(security: list[dict[str, list[str]]] | None) -> set[str]:
    """The roles a route's security requirements name (ADMIN_ONLY: {"admin"}; ANY_CALLER or none: nothing)."""
    return {role for requirement in security or [] for roles in requirement.values() for role in roles}


def allows(caller: Caller, security: list[dict[str, list[str]]] | None) -> bool:
    """Whether `caller` meets a route's security requirements (the only role there is: admin)."""
    required = roles_required(security)
    if required - {ADMIN_GROUP}:  # a requirement this code cannot check is refused, never waved through
        return False
    return caller.admin or not required
