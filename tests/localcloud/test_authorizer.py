"""The HTTP API's JWT authorizer under localcloud, as API Gateway HTTP APIs evaluate it (localcloud/auth.py).

The API here is a small template of its own, with the authorizer written as template.yaml writes it (the issuer and
audience through !If on JwtIssuer), so that these tests do not depend on what the real functions do with claims.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from localcloud import auth
from localcloud.cloud import LocalCloud
from localcloud.template import ROOT

TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  JwtIssuer: {Type: String, Default: ""}
  JwtAudience: {Type: String, Default: ""}
Conditions:
  CreatesUserPool: !Equals [!Ref JwtIssuer, ""]
Resources:
  UserPool:
    Type: AWS::Cognito::UserPool
    Condition: CreatesUserPool
  UserPoolClient:
    Type: AWS::Cognito::UserPoolClient
    Condition: CreatesUserPool
    Properties: {UserPoolId: !Ref UserPool}
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      Auth:
        DefaultAuthorizer: JwtAuthorizer
        Authorizers:
          JwtAuthorizer:
            IdentitySource: $request.header.Authorization
            JwtConfiguration:
              issuer: !If [CreatesUserPool, !Sub "https://cognito-idp.${AWS::Region}.amazonaws.com/${UserPool}",
                           !Ref JwtIssuer]
              audience: [!If [CreatesUserPool, !Ref UserPoolClient, !Ref JwtAudience]]
  WhoAmIFunction:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.13
      CodeUri: app/
      Handler: authz_app.whoami
      Events:
        WhoAmI:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: GET, Path: /whoami}
        AdminOnly:
          Type: HttpApi
          Properties:
            ApiId: !Ref Api
            Method: GET
            Path: /admin
            Auth: {Authorizer: JwtAuthorizer, AuthorizationScopes: [converge/admin]}
        Open:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: GET, Path: /open, Auth: {Authorizer: NONE}}
"""

HANDLER = """\
import json


def whoami(event, context):
    return {"statusCode": 200, "body": json.dumps(event["requestContext"].get("authorizer"))}
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("authorizer")
    (root / "app").mkdir()
    (root / "app" / "authz_app.py").write_text(HANDLER)
    (root / "template.yaml").write_text(TEMPLATE)
    return root / "template.yaml"


@pytest.fixture(scope="module")
def cloud(template: Path) -> Iterator[LocalCloud]:
    with LocalCloud(template) as deployed:
        yield deployed


def invocations(cloud: LocalCloud) -> int:
    return len(cloud.invocations("WhoAmIFunction"))


def assert_refused(cloud: LocalCloud, headers: dict[str, str] | None = None, token: str | None = None) -> None:
    before = invocations(cloud)
    response = cloud.http("GET", "/whoami", headers=headers, token=token)
    assert (response.status, response.json()) == (401, {"message": "Unauthorized"})
    assert invocations(cloud) == before, "the function was invoked for a refused request"


def other_key() -> RSAKey:
    # the local key's kid, another key: only the signature tells them apart
    return RSAKey.generate_key(2048, parameters={"kid": str(auth.signing_key().kid)})


def test_a_request_without_a_token_is_refused_before_the_function(cloud: LocalCloud) -> None:
    # GIVEN a route under the default JWT authorizer
    # WHEN it is called without an Authorization header, or with an empty one
    # THEN API Gateway's 401 comes back and the function never runs
    assert_refused(cloud)
    assert_refused(cloud, headers={"Authorization": ""})


@pytest.mark.parametrize(
    ("case", "make"),
    [
        ("malformed", lambda: "not-a-jwt"),
        ("three parts, no JSON", lambda: "aaa.bbb.ccc"),
        ("signed by another key", lambda: auth.issue("c-1", key=other_key())),
        ("expired", lambda: auth.issue("c-1", expires_in=-60)),
        ("not yet valid", lambda: auth.issue("c-1", extra_claims={"nbf": 4102444800})),
        ("another issuer", lambda: auth.issue("c-1", issuer="https://other.example/issuer")),
        ("another audience", lambda: auth.issue("c-1", audience="someone-else")),
    ],
)
def test_an_invalid_token_is_refused_before_the_function(cloud: LocalCloud, case: str, make: Any) -> None:
    # GIVEN a token API Gateway's JWT authorizer would refuse
    token = make()
    # WHEN the route is called with it
    # THEN 401 Unauthorized, and no invocation
    assert_refused(cloud, token=token)


def test_a_customer_token_reaches_the_function_with_its_claims_as_strings(cloud: LocalCloud) -> None:
    # GIVEN a customer's token from the local issuer
    token = cloud.token("c-42")
    # WHEN the route is called with it
    response = cloud.http("GET", "/whoami", token=token)
    # THEN the function runs and sees the claims (strings, as API Gateway renders them) and no admin scope
    assert response.status == 200
    context = response.json()
    claims = context["jwt"]["claims"]
    assert claims["sub"] == "c-42"
    assert claims["iss"] == auth.LOCAL_ISSUER
    assert all(isinstance(v, str) for v in claims.values())
    assert claims["exp"].isdigit()
    assert "converge/admin" not in (context["jwt"]["scopes"] or [])
    assert "cognito:groups" not in claims


def test_an_admin_token_carries_the_admin_scope_and_group(cloud: LocalCloud) -> None:
    # GIVEN an admin's token
    token = cloud.token("ops-1", admin=True)
    # WHEN the route is called with it
    response = cloud.http("GET", "/whoami", token=token)
    # THEN the scopes contain converge/admin and the groups claim is rendered as API Gateway renders arrays
    context = response.json()
    assert "converge/admin" in context["jwt"]["scopes"]
    assert context["jwt"]["claims"]["cognito:groups"] == "[admin]"
    assert context["jwt"]["claims"]["sub"] == "ops-1"


def test_the_bearer_prefix_is_optional(cloud: LocalCloud) -> None:
    # GIVEN a valid token
    token = cloud.token("c-7")
    # WHEN it is sent bare in the Authorization header, and after "Bearer "
    bare = cloud.http("GET", "/whoami", headers={"Authorization": token})
    prefixed = cloud.http("GET", "/whoami", headers={"Authorization": f"Bearer {token}"})
    # THEN both are accepted
    assert (bare.status, prefixed.status) == (200, 200)
    assert bare.json()["jwt"]["claims"]["sub"] == prefixed.json()["jwt"]["claims"]["sub"] == "c-7"


def test_a_route_with_authorization_scopes_needs_one_of_them(cloud: LocalCloud) -> None:
    # GIVEN a route whose authorizer asks for the scope converge/admin
    # WHEN a customer calls it, then an admin
    before = invocations(cloud)
    customer = cloud.http("GET", "/admin", token=cloud.token("c-1"))
    assert invocations(cloud) == before
    admin = cloud.http("GET", "/admin", token=cloud.token("ops-1", admin=True))
    # THEN the customer is refused (401) and the admin gets through
    assert (customer.status, customer.json()) == (401, {"message": "Unauthorized"})
    assert admin.status == 200


def test_a_route_without_an_authorizer_is_open(cloud: LocalCloud) -> None:
    # GIVEN a route with Auth: {Authorizer: NONE}
    # WHEN it is called without a token
    response = cloud.http("GET", "/open")
    # THEN the function runs, with no authorizer context
    assert response.status == 200
    assert response.json() is None


def test_the_issuer_is_the_deployed_one(template: Path) -> None:
    # GIVEN the API deployed with another issuer (a caller's parameter wins over localcloud's default)
    with LocalCloud(template, stack_name="other-issuer", parameters={"JwtIssuer": "https://idp.example/"}) as other:
        # WHEN a token from localcloud's issuer is sent
        response = other.http("GET", "/whoami", token=other.token("c-1"))
        # THEN it is refused: the authorizer checks the deployment's issuer, not localcloud's
        assert response.status == 401
        assert other.route_auth["GET /whoami"].authorizer.issuer == "https://idp.example/"
        assert other.route_auth["GET /whoami"].authorizer.audiences == [auth.LOCAL_AUDIENCE]


def test_the_token_command_prints_a_token_that_verifies() -> None:
    # GIVEN the token command, a process of its own (it shares the key file with serve)
    for argv, subject, admin in (
        (["--customer", "c-9"], "c-9", False),
        (["--admin", "--subject", "ops-2"], "ops-2", True),
    ):
        # WHEN it is run
        done = subprocess.run(
            [sys.executable, "-m", "localcloud", "token", *argv],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        # THEN it prints one token, which the local issuer's authorizer accepts for that subject
        assert done.returncode == 0, done.stderr
        claims = auth.verify(done.stdout.strip(), auth.LOCAL_ISSUER, [auth.LOCAL_AUDIENCE])
        assert claims["sub"] == subject
        assert ("converge/admin" in (auth.scopes_of(claims) or [])) is admin


def test_verify_names_the_failed_check() -> None:
    # GIVEN tokens failing one check each
    cases = {
        "iss": auth.issue("c-1", issuer="https://other.example/"),
        "audience": auth.issue("c-1", audience="nobody"),
        "exp": auth.issue("c-1", expires_in=-1),
        "signature": auth.issue("c-1", key=other_key()),
        "malformed": "x",
    }
    for reason, token in cases.items():
        # WHEN each is verified
        with pytest.raises(auth.Unauthorized) as refused:
            auth.verify(token, auth.LOCAL_ISSUER, [auth.LOCAL_AUDIENCE])
        # THEN the reason names it
        assert reason in refused.value.reason, refused.value.reason


def test_client_id_counts_only_without_aud() -> None:
    # GIVEN a token whose aud is another audience but whose client_id is the authorizer's
    token = auth.issue("c-1", extra_claims={"aud": "elsewhere", "client_id": auth.LOCAL_AUDIENCE})
    # WHEN it is verified  THEN it is refused: API Gateway reads client_id only when aud is absent
    with pytest.raises(auth.Unauthorized):
        auth.verify(token, auth.LOCAL_ISSUER, [auth.LOCAL_AUDIENCE])
    # and a Cognito access token (client_id, no aud) is accepted
    claims = {"sub": "c-1", "iss": auth.LOCAL_ISSUER, "client_id": auth.LOCAL_AUDIENCE, "exp": 4102444800}
    signed = jwt.encode({"alg": "RS256", "kid": auth.signing_key().kid}, claims, auth.signing_key())
    assert auth.verify(signed, auth.LOCAL_ISSUER, [auth.LOCAL_AUDIENCE])["sub"] == "c-1"


def test_claims_are_rendered_as_api_gateway_renders_them() -> None:
    # GIVEN claims of every JSON type  WHEN they are put in the event  THEN each is a string
    context = auth.authorizer_context({"n": 5, "f": 1.5, "b": True, "l": ["a", "b"], "s": "x"})
    assert context == {"jwt": {"claims": {"n": "5", "f": "1.5", "b": "true", "l": "[a b]", "s": "x"}, "scopes": None}}
    assert json.loads(json.dumps(context)) == context
