"""TokenAuth and AkSkAuth: the headers they send, what they sign, and what they never show."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qsl

import httpx
import pytest

from cce_upgrade_watch.cce.auth import AkSkAuth, TokenAuth, redact
from cce_upgrade_watch.cce.errors import CredentialsMissing
from cce_upgrade_watch.cce.signing import parse_authorization, sign
from tests.unit.cce.conftest import (
    ACCESS_KEY,
    PROJECT_ID,
    SECRET_KEY,
    SECURITY_TOKEN,
    TOKEN,
)
from tests.unit.cce.scripted_server import Reply, ScriptedServer, Seen

FIXED = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def _signed(auth: httpx.Auth, request: httpx.Request) -> httpx.Request:
    return next(auth.sync_auth_flow(request))


def _aksk(**kwargs: str | None) -> AkSkAuth:
    return AkSkAuth(ACCESS_KEY, SECRET_KEY, PROJECT_ID, kwargs.get("token"), clock=lambda: FIXED)


def test_token_auth_sends_the_token_header() -> None:
    request = _signed(TokenAuth(TOKEN), httpx.Request("GET", "https://h.example/x"))
    assert request.headers["X-Auth-Token"] == TOKEN
    assert "Authorization" not in request.headers


def test_aksk_adds_the_sdk_headers() -> None:
    request = _signed(_aksk(), httpx.Request("GET", "https://h.example/x"))
    assert request.headers["X-Sdk-Date"] == "20240506T070809Z"
    assert request.headers["X-Project-Id"] == PROJECT_ID
    assert request.headers["Content-Type"] == "application/json"
    assert "X-Security-Token" not in request.headers
    assert "X-Sdk-Content-Sha256" not in request.headers
    parsed = parse_authorization(request.headers["Authorization"])
    assert parsed is not None
    assert parsed[:2] == (ACCESS_KEY, "content-type;host;x-project-id;x-sdk-date")


def test_aksk_keeps_an_x_sdk_date_already_on_the_request() -> None:
    request = httpx.Request(
        "GET", "https://h.example/x", headers={"x-sdk-date": "20200101T000000Z"}
    )
    assert _signed(_aksk(), request).headers["X-Sdk-Date"] == "20200101T000000Z"


def test_aksk_sends_and_signs_the_security_token() -> None:
    request = _signed(_aksk(token=SECURITY_TOKEN), httpx.Request("GET", "https://h.example/x"))
    assert request.headers["X-Security-Token"] == SECURITY_TOKEN
    assert "x-security-token" in request.headers["Authorization"]


def test_aksk_declares_unsigned_payload_for_non_json_bodies() -> None:
    request = httpx.Request(
        "POST", "https://h.example/x", content=b"raw", headers={"Content-Type": "text/plain"}
    )
    signed = _signed(_aksk(), request)
    assert signed.headers["X-Sdk-Content-Sha256"] == "UNSIGNED-PAYLOAD"
    assert signed.headers["Content-Type"] == "text/plain"


def test_aksk_puts_the_canonical_query_on_the_wire() -> None:
    # httpx writes a space as "+"; the wire must carry exactly the signed form.
    request = httpx.Request(
        "GET", "https://h.example/x", params=[("b", "2 3"), ("a", "z"), ("a", "")]
    )
    assert request.url.query == b"b=2+3&a=z&a="
    assert _signed(_aksk(), request).url.query == b"a=&a=z&b=2%203"


def test_aksk_signs_the_path_httpx_sends_after_dot_segments_are_resolved() -> None:
    request = _signed(_aksk(), httpx.Request("GET", "https://h.example/a/./b/../c"))
    assert request.url.raw_path == b"/a/c"
    names = "content-type;host;x-project-id;x-sdk-date"
    expected = sign(
        method="GET",
        path="/a/c",
        query=[],
        headers={name: request.headers[name] for name in names.split(";")},
        body=b"",
        secret_key=SECRET_KEY,
    )
    assert request.headers["Authorization"] == expected.authorization(ACCESS_KEY)


def test_credentials_lose_surrounding_whitespace() -> None:
    # A Secret made with --from-file keeps the file's trailing newline.
    padded = AkSkAuth(ACCESS_KEY + "\n", SECRET_KEY + "\n", PROJECT_ID, clock=lambda: FIXED)
    request = httpx.Request("GET", "https://h.example/x")
    assert (
        _signed(padded, request).headers["Authorization"]
        == _signed(_aksk(), httpx.Request("GET", "https://h.example/x")).headers["Authorization"]
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: TokenAuth(""),
        lambda: TokenAuth("  \n"),
        lambda: AkSkAuth("", SECRET_KEY, PROJECT_ID),
        lambda: AkSkAuth(ACCESS_KEY, "", PROJECT_ID),
        lambda: AkSkAuth(ACCESS_KEY, SECRET_KEY, ""),
    ],
)
def test_empty_credentials_are_refused(make: object) -> None:
    with pytest.raises(CredentialsMissing) as caught:
        make()  # type: ignore[operator]
    assert caught.value.reason == "CredentialsNotFound"


def test_a_token_that_cannot_be_a_header_is_refused_without_echoing_it() -> None:
    bad = TOKEN[:10] + "\n" + TOKEN[10:]
    with pytest.raises(CredentialsMissing) as caught:
        TokenAuth(bad)
    assert TOKEN[:10] not in str(caught.value)
    with pytest.raises(CredentialsMissing) as caught:
        AkSkAuth(ACCESS_KEY, SECRET_KEY, PROJECT_ID, security_token="tök" + SECURITY_TOKEN)
    assert SECURITY_TOKEN not in str(caught.value)


def test_repr_masks_every_secret() -> None:
    text = repr(_aksk(token=SECURITY_TOKEN)) + repr(TokenAuth(TOKEN)) + str(_aksk())
    for secret in (SECRET_KEY, SECURITY_TOKEN, TOKEN, ACCESS_KEY):
        assert secret not in text
    assert "****" in text
    assert ACCESS_KEY[:4] in text  # enough to tell keys apart


def test_redact_scrubs_the_secrets_of_an_auth() -> None:
    text = f"echo: {SECRET_KEY} and {SECURITY_TOKEN}"
    assert redact(text, _aksk(token=SECURITY_TOKEN)) == "echo: **** and ****"
    assert redact(f"bad token {TOKEN}", TokenAuth(TOKEN)) == "bad token ****"


def _verify_like_a_server(seen: Seen) -> Reply | None:
    """Recompute the signature from what arrived, the way the simulator does."""
    parsed = parse_authorization(seen.headers.get("authorization", ""))
    if parsed is None:
        return Reply(401, {"error_code": "CCE.01401001", "error_msg": "no signature"})
    _access_key, names, signature = parsed
    expected = sign(
        method=seen.method,
        path=seen.path,
        query=parse_qsl(seen.query, keep_blank_values=True),
        headers={name: seen.headers[name] for name in names.split(";")},
        body=seen.body,
        secret_key=SECRET_KEY,
    )
    if expected.signature != signature:
        return Reply(401, {"error_code": "CCE.01401001", "error_msg": "signature mismatch"})
    return Reply(200, {"items": []})


@pytest.mark.parametrize(
    ("method", "path", "params", "body"),
    [
        ("GET", "/autopilot/v3/projects/p/clusters/c/operation/upgradeworkflows", None, None),
        ("GET", "/with space/ü/~/%2F/a+b", [("q", "a b"), ("q", ""), ("z", "+&=")], None),
        ("POST", "/x/", [("k", "ü")], b'{"spec": {"targetVersion": "v1.29.1-r0"}}'),
        ("PATCH", "/x/y", None, b'{"status": {"phase": "Cancel"}}'),
    ],
)
async def test_a_server_recomputes_the_same_signature_from_the_wire(
    server: ScriptedServer,
    method: str,
    path: str,
    params: list[tuple[str, str | int | float | bool | None]] | None,
    body: bytes | None,
) -> None:
    server.inspect = _verify_like_a_server
    auth = AkSkAuth(ACCESS_KEY, SECRET_KEY, PROJECT_ID, SECURITY_TOKEN)
    async with httpx.AsyncClient() as http:
        response = await http.request(
            method, server.url + path, params=params, content=body, auth=auth
        )
    assert response.status_code == 200, response.text
    assert server.seen[0].headers["x-security-token"] == SECURITY_TOKEN


async def test_the_server_check_rejects_a_wrong_secret_key(server: ScriptedServer) -> None:
    server.inspect = _verify_like_a_server
    wrong = AkSkAuth(ACCESS_KEY, SECRET_KEY + "x", PROJECT_ID)
    async with httpx.AsyncClient() as http:
        response = await http.get(server.url + "/x", auth=wrong)
    assert response.status_code == 401
