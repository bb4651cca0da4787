"""The API's story: acme's read-write and read tokens (made by alice, acme's admin), globex's jobs."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from django.test import Client

from jobs.api.models import ApiToken, Scope
from jobs.api.services import api_token_create
from tenants.models import Membership, Role


@dataclass
class Caller:
    """A test client that sends one token with every request and reads JSON back."""

    client: Client
    token: str | None
    row: ApiToken | None = None

    def _headers(self, headers: dict | None) -> dict:
        sent = {"HTTP_AUTHORIZATION": f"Bearer {self.token}"} if self.token else {}
        return {**sent, **(headers or {})}

    def get(self, path: str, params: dict | None = None, **headers):
        return self.client.get(path, params or {}, **self._headers(headers))

    def post(self, path: str, body=None, **headers):
        data = json.dumps(body) if body is not None else ""
        return self.client.post(path, data, content_type="application/json", **self._headers(headers))

    def request(self, method: str, path: str, body=None, **headers):
        data = json.dumps(body) if body is not None else ""
        return self.client.generic(method, path, data, content_type="application/json", **self._headers(headers))

    def patch(self, path: str, body=None, **headers):
        return self.request("PATCH", path, body, **headers)

    def delete(self, path: str, **headers):
        return self.request("DELETE", path, **headers)


@pytest.fixture
def make_token(acme, alice):
    """A token of `tenant` (acme) made by `user` (alice, its admin); with `platform`, a platform token. A
    maker who is not an admin of the tenant made it while they were one, and was demoted since."""
    def make(*, tenant=None, scope: str = Scope.READ_WRITE, user=None, name: str = "billing",
             platform: bool = False) -> tuple[ApiToken, str]:
        tenant, user = (None if platform else tenant or acme), user or alice
        membership = Membership.objects.filter(user=user, tenant=tenant).first() if tenant else None
        if membership is None or membership.role == Role.ADMIN:
            return api_token_create(tenant=tenant, name=name, scope=scope, user=user)
        Membership.objects.filter(pk=membership.pk).update(role=Role.ADMIN)
        try:
            return api_token_create(tenant=tenant, name=name, scope=scope, user=user)
        finally:
            Membership.objects.filter(pk=membership.pk).update(role=membership.role)
    return make


@pytest.fixture
def writer(make_token) -> Caller:
    row, secret = make_token(scope=Scope.READ_WRITE)
    return Caller(Client(), secret, row)


@pytest.fixture
def reader(make_token) -> Caller:
    row, secret = make_token(scope=Scope.READ, name="dashboard")
    return Caller(Client(), secret, row)


@pytest.fixture
def anonymous() -> Caller:
    return Caller(Client(), None)


def assert_error(response, status: int, code: str | None = None, field: str | None = None) -> dict:
    """The one error shape: {"error": {"code", "message", "field"?}} with a JSON content type."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    error = response.json()["error"]
    assert set(error) <= {"code", "message", "field", "details"}, error
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    if field is not None:
        assert error.get("field") == field, error
    return error
