"""Ephemeral client secrets: minted with a key, used once or more by a browser, then gone."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from openai import AsyncOpenAI
from structlog.testing import capture_logs

from realtime_daemon.server.client_secrets import Signer
from realtime_daemon.server.state import STATE

from .conftest import PATH, Daemon, StartServer, receive_envelope, receive_until
from .test_keys import KEYS, MODELS, Clock, bearer
from .test_realtime_sdk import answer, events_until, text_of, user

SECRET_KEY = b"0123456789abcdef-the-fleet-signs-with-this"


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.toml"
    path.write_text(KEYS)
    return path


@pytest.fixture
def secret_key_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.key"
    path.write_bytes(SECRET_KEY)
    return path


@pytest.fixture
async def minting(serve_engine: StartServer, keys_file: Path, secret_key_file: Path) -> Daemon:
    """A daemon with the keys, minting client secrets."""
    return await serve_engine(
        engine=None, models=MODELS, keys_file=str(keys_file), secret_key_file=str(secret_key_file)
    )


def sdk(daemon: Daemon, api_key: str) -> AsyncOpenAI:
    base = f"{daemon.host}:{daemon.port}/v1"
    return AsyncOpenAI(
        api_key=api_key, base_url=f"http://{base}", websocket_base_url=f"ws://{base}"
    )


SESSION = {"type": "realtime", "model": "m1", "instructions": "Be terse."}


async def mint(daemon: Daemon, token: str = "alpha-token", **body: Any) -> tuple[int, Any]:
    payload = {"session": SESSION, **body}
    async with daemon.session.post(
        "/v1/realtime/client_secrets", json=payload, headers=bearer(token)
    ) as response:
        return response.status, await response.json()


async def test_a_secret_minted_with_the_sdk_opens_an_sdk_session_with_its_configuration(
    minting: Daemon,
) -> None:
    """client_secrets.create, then realtime.connect with the secret: the session starts
    with the secret's configuration and answers."""
    async with sdk(minting, "alpha-token") as backend:
        secret = await backend.realtime.client_secrets.create(
            expires_after={"anchor": "created_at", "seconds": 60}, session=SESSION
        )
    assert secret.value.startswith("ek_")
    assert secret.session.model == "m1"
    assert secret.session.instructions == "Be terse."
    async with sdk(minting, secret.value).realtime.connect(model="m1") as conn:
        created = (await events_until(conn, "session.created"))[-1]
        assert created.session.instructions == "Be terse."
        await conn.conversation.item.create(item=user("one two"))
        events = await answer(conn)
    assert text_of(events) == "one two"


async def test_the_browser_subprotocol_carries_the_secret(minting: Daemon) -> None:
    """``openai-insecure-api-key.<secret>`` beside ``realtime``, as a browser sends it;
    neither the secret nor the key's token is logged, refused or not."""
    with capture_logs() as logs:
        status, secret = await mint(minting)
        assert status == 200
        protocols = ("realtime", f"openai-insecure-api-key.{secret['value']}")
        async with minting.ws_connect(PATH, protocols=protocols) as ws:
            assert ws.protocol == "realtime"
            created = await receive_envelope(ws)
            assert created["type"] == "session.created"
            assert created["session"]["model"] == "m1"
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await minting.ws_connect(PATH, headers=bearer(_altered(secret["value"])))
    assert any(line["event"] == "upgrade_refused" for line in logs)
    body = secret["value"].rpartition(".")[0]
    assert all(body not in repr(line) and "alpha-token" not in repr(line) for line in logs)


def _altered(value: str) -> str:
    body, _, signature = value.rpartition(".")
    flipped = body[:-1] + ("A" if body[-1] != "A" else "B")
    return f"{flipped}.{signature}"


async def test_forged_altered_expired_and_foreign_secrets_are_401(minting: Daemon) -> None:
    """Only a secret this fleet signed, unchanged and unexpired, gets in."""
    status, secret = await mint(minting)
    assert status == 200
    foreign = Signer(b"another fleet's signing key!").mint("alpha", secret["expires_at"], SESSION)
    for value in ("ek_forged.c2lnbmF0dXJl", _altered(secret["value"]), foreign):
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await minting.ws_connect(PATH, headers=bearer(value))
        assert caught.value.status == 401, value
    clock = Clock(float(secret["expires_at"]))
    minting.app[STATE].admission.clock = clock
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await minting.ws_connect(PATH, headers=bearer(secret["value"]))
    assert caught.value.status == 401
    clock.now -= 1
    async with minting.ws_connect(PATH, headers=bearer(secret["value"])) as ws:
        assert (await receive_envelope(ws))["type"] == "session.created"


async def test_a_secret_mints_nothing_and_lists_nothing(minting: Daemon) -> None:
    """A client secret opens a connection only: minting or listing models with it is 401."""
    _, secret = await mint(minting)
    status, body = await mint(minting, token=secret["value"])
    assert (status, body["error"]["code"]) == (401, "invalid_api_key")
    async with minting.get("/v1/models", headers=bearer(secret["value"])) as response:
        assert response.status == 401


async def test_what_a_secret_may_be_is_checked_when_it_is_minted(minting: Daemon) -> None:
    """A ttl out of range, a bad session or another key's model are refused at once."""
    status, body = await mint(minting, expires_after={"anchor": "created_at", "seconds": 5})
    assert (status, body["error"]["param"]) == (400, "expires_after.seconds")
    status, body = await mint(minting, expires_after={"seconds": 7201})
    assert status == 400
    status, body = await mint(
        minting, session={"type": "realtime", "model": "m1", "temperature": "x"}
    )
    assert status == 400
    status, body = await mint(minting, token="beta-token")  # beta may not use m1
    assert (status, body["error"]["code"]) == (403, "model_not_allowed")
    status, body = await mint(minting, session={"type": "realtime", "model": "nope"})
    assert status == 400 and "nope" in body["error"]["message"]


async def test_the_beta_sessions_endpoint_answers_in_the_beta_shape(minting: Daemon) -> None:
    """POST /v1/realtime/sessions: the session itself, with ``client_secret``."""
    body = {
        "model": "m2",
        "instructions": "Hi.",
        "client_secret": {"expires_after": {"seconds": 30}},
    }
    async with minting.session.post(
        "/v1/realtime/sessions", json=body, headers=bearer("beta-token")
    ) as response:
        assert response.status == 200
        session = await response.json()
    assert session["model"] == "m2"
    assert session["client_secret"]["value"].startswith("ek_")
    headers = {**bearer(session["client_secret"]["value"]), "OpenAI-Beta": "realtime=v1"}
    async with minting.ws_connect(PATH, headers=headers) as ws:
        created = await receive_envelope(ws)
        assert created["session"]["instructions"] == "Hi."


async def test_a_secret_minted_on_one_instance_opens_a_session_on_another(
    serve_engine: StartServer, keys_file: Path, secret_key_file: Path
) -> None:
    """Instances sharing the keys and secret key files accept each other's secrets."""
    settings = {"keys_file": str(keys_file), "secret_key_file": str(secret_key_file)}
    one = await serve_engine(engine=None, models=MODELS, **settings)
    two = await serve_engine(engine=None, models=MODELS, **settings)
    _, secret = await mint(one)
    async with two.ws_connect(PATH, headers=bearer(secret["value"])) as ws:
        assert (await receive_envelope(ws))["session"]["instructions"] == "Be terse."


async def test_a_disabled_key_takes_its_secrets_and_their_sessions(
    minting: Daemon, keys_file: Path
) -> None:
    """Disabling the key on reload closes its secrets' sessions (1008) and refuses them."""
    _, secret = await mint(minting)
    state = minting.app[STATE]
    async with minting.ws_connect(PATH, headers=bearer(secret["value"])) as ws:
        await receive_until(ws, "session.created", key="type")
        keys_file.write_text(KEYS.replace('name = "alpha"', 'name = "alpha"\ndisabled = true'))  # noqa: ASYNC240
        assert state.admission.keyring is not None
        gone = state.admission.keyring.reload()
        assert state.key_sessions.revoke(gone) == 1  # what SIGHUP does
        async with asyncio.timeout(2):
            msg = await ws.receive()
        assert (msg.data, msg.extra) == (1008, "key 'alpha' was removed or disabled")
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await minting.ws_connect(PATH, headers=bearer(secret["value"]))
    assert caught.value.status == 401


async def test_without_a_secret_key_file_minting_is_501(
    serve_engine: StartServer, keys_file: Path
) -> None:
    """No --secret-key-file: the endpoint says what it needs."""
    daemon = await serve_engine(engine=None, models=MODELS, keys_file=str(keys_file))
    status, body = await mint(daemon)
    assert status == 501
    assert body["error"]["message"] == "client secrets need --secret-key-file"
