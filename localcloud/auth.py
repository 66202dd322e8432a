"""The HTTP API's JWT authorizer, as API Gateway HTTP APIs evaluate it, and a local issuer to sign tokens for it.

API Gateway's workflow (docs: "Control access to HTTP APIs with JWT authorizers"): the token is the identity
source (`$request.header.Authorization`), alone or after `Bearer `; its algorithm must be RSA and its signature
must verify with the key of the issuer's JWKS its `kid` names; `iss` must equal the authorizer's issuer; `aud`
(or `client_id` when there is no `aud`) must contain one of its audiences; `exp` must be in the future and
`nbf`/`iat`, when present, in the past; a route with authorization scopes needs one of them in `scope`/`scp`.
Any failure is a 401 `{"message":"Unauthorized"}` and the integration is not invoked. The claims reach the function
as strings (`requestContext.authorizer.jwt.claims`), with the token's scopes (`jwt.scopes`, None without any).

The local issuer (LOCAL_ISSUER) signs with an RSA key kept in `.localcloud/jwt-key.json` at the checkout's root
(git-ignored, mode 0600, created on first use), so that `python -m localcloud serve` and a separate
`python -m localcloud token` agree on it. It is a development key: it signs nothing outside this machine.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey
from joserfc.jws import extract_compact

LOCAL_ISSUER = "https://localcloud.localhost/issuer"
LOCAL_AUDIENCE = "converge-localcloud"
ADMIN_SCOPE = "converge/admin"
ADMIN_GROUP = "admin"
KEY_FILE = Path(__file__).resolve().parents[1] / ".localcloud" / "jwt-key.json"
RSA_ALGORITHMS = ("RS256", "RS384", "RS512")  # API Gateway accepts RSA-based algorithms only
UNAUTHORIZED = {"message": "Unauthorized"}


class Unauthorized(Exception):
    """A token API Gateway's JWT authorizer would refuse; `reason` says which check failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ------------------------------------------------------------------------------------------------ the local issuer
def _load_or_create_key(path: Path) -> RSAKey:
    if path.exists():
        return RSAKey.import_key(json.loads(path.read_text()))
    key = RSAKey.generate_key(2048, parameters={"kid": f"localcloud-{uuid.uuid4().hex[:12]}", "use": "sig"})
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(key.as_dict(private=True), out)
    try:
        os.link(draft, path)  # atomic and refuses to replace: of two first uses at once, one key wins
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    return RSAKey.import_key(json.loads(path.read_text()))


@cache
def signing_key(path: Path = KEY_FILE) -> RSAKey:
    """The local issuer's private key (from `path`, created there on first use)."""
    return _load_or_create_key(path)


def jwks(path: Path = KEY_FILE) -> dict[str, Any]:
    """The local issuer's JWKS: its public key only, as an issuer publishes it at its jwks_uri."""
    public = signing_key(path).as_dict(private=False)
    return {"keys": [public | {"alg": "RS256", "use": "sig"}]}


def issue(
    subject: str,
    *,
    admin: bool = False,
    expires_in: int = 3600,
    audience: str = LOCAL_AUDIENCE,
    issuer: str = LOCAL_ISSUER,
    extra_claims: dict[str, Any] | None = None,
    key: RSAKey | None = None,
) -> str:
    """A signed RS256 access token for `subject`, Cognito-shaped (`client_id`, `token_use`, `scope`).

    An admin token carries the scope `converge/admin` and the group `admin` (`cognito:groups`). `expires_in` may be
    negative (an expired token); `extra_claims` add or replace claims; `key` signs instead of the local key.
    """
    signer = key or signing_key()
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": subject,
        "iss": issuer,
        "client_id": audience,
        "aud": audience,
        "token_use": "access",
        "scope": "converge/api" + (f" {ADMIN_SCOPE}" if admin else ""),
        "iat": now,
        "nbf": now,
        "exp": now + expires_in,
        "jti": str(uuid.uuid4()),
    }
    if admin:
        claims["cognito:groups"] = [ADMIN_GROUP]
    claims.update(extra_claims or {})
    header = {"alg": "RS256", "typ": "JWT", "kid": signer.kid}
    return jwt.encode(header, claims, signer, algorithms=["RS256"])


# ------------------------------------------------------------------------------------------------ verification
def token_from(identity: str | None) -> str:
    """The token in an identity source's value: the whole value, or what follows `Bearer `."""
    if not identity or not identity.strip():
        raise Unauthorized("no token in the identity source")
    value = identity.strip()
    return value[len("Bearer ") :].strip() if value.startswith("Bearer ") else value


def verify(
    token: str,
    issuer: str,
    audiences: list[str],
    *,
    keys: dict[str, Any] | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The token's claims if API Gateway's JWT authorizer accepts it for `issuer` and `audiences`; else raises
    Unauthorized naming the failed check. `keys` is the issuer's JWKS (the local issuer's by default)."""
    key_set = KeySet.import_key_set(keys or jwks())  # type: ignore[arg-type]
    try:
        header = extract_compact(token.encode()).headers()
    except (JoseError, ValueError, UnicodeError) as exc:
        raise Unauthorized(f"malformed token: {exc}") from exc
    if header.get("alg") not in RSA_ALGORITHMS:
        raise Unauthorized(f"algorithm {header.get('alg')!r} is not RSA-based")
    kid = header.get("kid")
    if not any(k.kid == kid for k in key_set.keys):
        raise Unauthorized(f"kid {kid!r} is not in the issuer's JWKS")
    try:
        decoded = jwt.decode(token, key_set, algorithms=list(RSA_ALGORITHMS))
    except (JoseError, ValueError) as exc:
        raise Unauthorized(f"signature: {exc}") from exc
    claims = dict(decoded.claims)
    if claims.get("iss") != issuer:
        raise Unauthorized(f"iss {claims.get('iss')!r} is not the issuer {issuer!r}")
    # API Gateway checks client_id only when there is no aud.
    presented = claims["aud"] if "aud" in claims else claims.get("client_id")
    presented = presented if isinstance(presented, list) else [presented]
    if not any(a in audiences for a in presented):
        raise Unauthorized(f"audience {presented!r} is not one of {audiences!r}")
    moment = time.time() if now is None else now
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp <= moment:
        raise Unauthorized(f"exp {exp!r} is not in the future")
    for name in ("nbf", "iat"):
        value = claims.get(name)
        if value is not None and (not isinstance(value, int | float) or value > moment):
            raise Unauthorized(f"{name} {value!r} is not in the past")
    return claims


def scopes_of(claims: dict[str, Any]) -> list[str] | None:
    """The token's scopes (`scope`, else `scp`; a space-separated string or a list), None without any."""
    raw = claims.get("scope", claims.get("scp"))
    if raw is None:
        return None
    scopes = raw.split() if isinstance(raw, str) else [str(s) for s in raw]
    return scopes or None


def render_claim(value: Any) -> str:
    """A claim as API Gateway hands it to the function: a string; numbers and booleans in their JSON spelling,
    an array as `[a b]` (its elements rendered the same way, space-separated), an object as `map[k:v ...]`."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    if isinstance(value, list):
        return "[" + " ".join(render_claim(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{render_claim(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


def authorizer_context(claims: dict[str, Any]) -> dict[str, Any]:
    """`requestContext.authorizer` of a payload format 2.0 event for accepted claims."""
    return {"jwt": {"claims": {k: render_claim(v) for k, v in claims.items()}, "scopes": scopes_of(claims)}}


# ------------------------------------------------------------------------------------------------ the API's config
@dataclass(frozen=True)
class JwtAuthorizer:
    name: str
    identity_source: str  # $request.header.<Name>
    issuer: str
    audiences: list[str]

    @property
    def header(self) -> str:
        return self.identity_source.removeprefix("$request.header.").lower()


@dataclass(frozen=True)
class RouteAuth:
    authorizer: JwtAuthorizer
    scopes: list[str]


def route_auth_from_openapi(body: dict[str, Any]) -> dict[str, RouteAuth]:
    """Route key (`GET /things/{id}`, `$default`) -> its JWT authorizer, from an HTTP API's OpenAPI body (as SAM
    writes it, intrinsics resolved): `components.securitySchemes.*.x-amazon-apigateway-authorizer` of type jwt,
    and each operation's `security`. A route without a JWT authorizer (`Authorizer: NONE`) is absent."""
    authorizers: dict[str, JwtAuthorizer] = {}
    for name, scheme in (body.get("components", {}).get("securitySchemes") or {}).items():
        config = scheme.get("x-amazon-apigateway-authorizer", {})
        if str(config.get("type", "")).lower() != "jwt":
            continue
        jwt_config = config.get("jwtConfiguration", {})
        audience = jwt_config.get("audience", [])
        authorizers[name] = JwtAuthorizer(
            name=name,
            identity_source=str(config.get("identitySource", "$request.header.Authorization")),
            issuer=str(jwt_config.get("issuer", "")),
            audiences=[str(a) for a in (audience if isinstance(audience, list) else [audience])],
        )
    routes: dict[str, RouteAuth] = {}
    for path, operations in (body.get("paths") or {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            for requirement in operation.get("security") or []:
                for name, scopes in requirement.items():
                    if name in authorizers:
                        verb = "ANY" if method == "x-amazon-apigateway-any-method" else method.upper()
                        key = "$default" if path == "$default" else f"{verb} {path}"
                        routes[key] = RouteAuth(authorizers[name], [str(s) for s in scopes or []])
    return routes


def authorize(auth: RouteAuth, headers: dict[str, str], keys: dict[str, Any] | None = None) -> dict[str, Any]:
    """`requestContext.authorizer` for a request to a route under `auth`, or raises Unauthorized."""
    lowered = {k.lower(): v for k, v in headers.items()}
    token = token_from(lowered.get(auth.authorizer.header))
    claims = verify(token, auth.authorizer.issuer, auth.authorizer.audiences, keys=keys)
    if auth.scopes and not set(auth.scopes) & set(scopes_of(claims) or []):
        raise Unauthorized(f"none of the route's scopes {auth.scopes!r} in the token")
    return authorizer_context(claims)
