"""The service's bearer token can come from a ZenML secret of the session's store, named by
HEADLINER_API_TOKEN_SECRET; a secret without a 'token' value is a clear error."""

import pytest

from headliner.serving.settings import ServingSettings


def test_the_bearer_token_can_come_from_a_zenml_secret(local_stack, monkeypatch):
    from zenml.client import Client

    client = Client()
    client.create_secret("headliner-serving-test", values={"token": "from-the-secret"})
    client.create_secret("headliner-serving-no-token", values={"password": "x"})
    monkeypatch.delenv("HEADLINER_API_TOKEN", raising=False)
    monkeypatch.setenv("HEADLINER_API_TOKEN_SECRET", "headliner-serving-test")
    assert ServingSettings().bearer_token() == "from-the-secret"

    monkeypatch.setenv("HEADLINER_API_TOKEN_SECRET", "headliner-serving-no-token")
    with pytest.raises(ValueError, match="ZenML secret 'headliner-serving-no-token' has no 'token' value"):
        ServingSettings().bearer_token()
