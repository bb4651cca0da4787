"""The API's story: acme's read-write and read tokens (made by alice, acme's admin), globex's jobs."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from django.test import Client

from jobs.api.models import ApiToken, Scope
from jobs.api.services import api_token_create


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

    def request(self, method: str, path: str, **headers):
        return self.client.generic(method, path, **self._headers(headers))


@pytest.fixture
def make_token(acme, alice):
    def make(*, tenant=None, scope: str = Scope.READ_WRITE, user=None, name: str = "billing") -> tuple[ApiToken, str]:
        return api_token_create(tenant=tenant or acme, name=name, scope=scope, user=user or alice)
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
