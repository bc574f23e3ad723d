"""ICE servers and TURN credentials (gateway/ice.py), and their settings."""

from __future__ import annotations

import base64
import hashlib
import hmac

import msgspec
import pytest

from gateway.cli import build_parser, settings_from_args
from gateway.config import load_settings
from gateway.errors import ConfigError
from gateway.ice import IcePolicy, IceServer, check_url, split_list, turn_credential
from gateway.observability.labels import classify_event, signaling_event

STUN = "stun:stun.example.com:3478"
TURN = "turn:turn.example.com:3478?transport=udp"
TURNS = "turns:turn.example.com:5349?transport=tcp"
NOW = 1_700_000_000.75


def policy(**overrides: object) -> IcePolicy:
    options: dict[str, object] = {
        "stun_urls": STUN,
        "turn_urls": f"{TURN},{TURNS}",
        "turn_secret": "coturn-secret",
    }
    return IcePolicy.parse(**{**options, **overrides})  # type: ignore[arg-type]


def test_credential_is_base64_hmac_sha1_of_the_username() -> None:
    # Computed outside Python: printf '1700003600:ann' | openssl dgst -sha1 -hmac coturn-secret
    # -binary | base64
    assert turn_credential("coturn-secret", "1700003600:ann") == "ea/8I97EFWIDEnmXVmqK05rqEwk="
    digest = hmac.new(b"other-secret", b"1700003600:ann", hashlib.sha1).digest()
    assert turn_credential("other-secret", "1700003600:ann") == base64.b64encode(digest).decode()


def test_turn_username_is_expiry_then_user_and_the_ttl_counts_from_now() -> None:
    stun, turn = policy(ttl_s=3600).servers("ann", True, NOW)
    assert stun == IceServer([STUN])
    assert turn.urls == [TURN, TURNS]
    assert turn.username == "1700003600:ann"
    assert turn.credential == "ea/8I97EFWIDEnmXVmqK05rqEwk="
    later = policy(ttl_s=60).servers("ann", True, NOW + 10)[1]
    assert later.username == "1700000070:ann"


def test_a_user_id_with_colons_keeps_them_after_the_expiry() -> None:
    # coturn reads the expiry up to the first colon; the rest is the user.
    turn = policy().servers("org:42:ann", True, NOW)[1]
    assert turn.username == "1700003600:org:42:ann"


def test_a_user_id_too_long_for_stun_goes_hashed() -> None:
    user = "é" * 256  # 512 bytes of UTF-8: with the expiry, over STUN's 512-byte USERNAME
    turn = policy().servers(user, True, NOW)[1]
    assert turn.username == f"1700003600:{hashlib.sha256(user.encode()).hexdigest()}"
    assert turn.credential == turn_credential("coturn-secret", turn.username)


def test_the_first_secret_signs_during_a_rotation() -> None:
    rotating = policy(turn_secret="new-secret, old-secret").servers("ann", True, NOW)[1]
    assert rotating.username is not None
    assert rotating.credential == turn_credential("new-secret", rotating.username)
    assert rotating.credential != turn_credential("old-secret", rotating.username)


def test_anonymous_users_get_stun_only_unless_turn_for_anonymous() -> None:
    assert policy().servers("anon", False, NOW) == [IceServer([STUN])]
    assert [s.urls for s in policy(turn_for_anonymous=True).servers("anon", False, NOW)] == [
        [STUN],
        [TURN, TURNS],
    ]
    turn_only = policy(stun_urls="")
    assert turn_only.servers("anon", False, NOW) == []
    assert turn_only.configured


def test_nothing_configured_gives_nothing() -> None:
    empty = IcePolicy.parse()
    assert not empty.configured
    assert empty.servers("ann", True, NOW) == []


def test_the_list_is_what_rtcpeerconnection_takes() -> None:
    servers = policy().servers("ann", True, NOW)
    assert msgspec.json.decode(msgspec.json.encode(servers)) == [
        {"urls": [STUN]},
        {
            "urls": [TURN, TURNS],
            "username": "1700003600:ann",
            "credential": "ea/8I97EFWIDEnmXVmqK05rqEwk=",
        },
    ]


@pytest.mark.parametrize(
    "url",
    [
        "stun:stun.l.google.com:19302",
        "stun:127.0.0.1",
        "stun:[2001:db8::1]:3478",
        "turn:turn.example.com",
        "turn:10.0.0.1:3478?transport=udp",
        "turn:turn.example.com:443?transport=tcp",
        "turns:turn.example.com:5349",
        "turns:[::1]:5349?transport=tcp",
    ],
)
def test_good_urls(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "stun://stun.example.com",
        "http://turn.example.com",
        "turn:",
        "turn:turn.example.com:99999",
        "turn:turn.example.com:0",
        "turn:turn.example.com?transport=sctp",
        "turn:turn.example.com?foo=bar",
        "stun:stun.example.com?transport=udp",
        "turn:user@turn.example.com",
        "turn:-bad-.example.com",
        "turn:turn.example.com:3478/path",
    ],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        check_url(url)


def test_comma_lists() -> None:
    assert split_list("") == ()
    assert split_list("  ") == ()
    assert split_list("a, b ,c") == ("a", "b", "c")
    with pytest.raises(ConfigError):
        split_list("a,,b")
    with pytest.raises(ConfigError):
        split_list("a,")


@pytest.mark.parametrize(
    "options",
    [
        {"turn_urls": TURN},  # TURN without a secret
        {"turn_secret": "s"},  # a secret for no TURN server
        {"stun_urls": TURN},  # a TURN URL in the STUN list
        {"turn_urls": STUN, "turn_secret": "s"},  # a STUN URL in the TURN list
        {"turn_urls": TURN, "turn_secret": "s", "turn_ttl_s": 0},
        {"stun_urls": "stun.example.com"},
    ],
)
def test_settings_refuse_what_cannot_work(options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        load_settings(options, environ={})


def test_settings_from_flags_and_environment() -> None:
    args = build_parser().parse_args(
        ["serve", "--turn-urls", TURN, "--turn-secret", "a,b", "--turn-for-anonymous"]
    )
    s = settings_from_args(args).ice
    assert (s.turn_urls, s.turn_secret, s.turn_for_anonymous, s.turn_ttl_s) == (
        TURN,
        "a,b",
        True,
        3600,
    )
    env = {"GATEWAY_STUN_URLS": STUN, "GATEWAY_TURN_TTL_S": "600"}
    ice = load_settings(environ=env).ice.policy()
    assert (ice.stun_urls, ice.turn_urls, ice.ttl_s) == ((STUN,), (), 600)
    assert not load_settings(environ={}).ice.policy().configured


def test_ice_servers_pushes_share_the_signaling_bucket() -> None:
    assert classify_event("room:x", "ice_servers") == "signaling"
    # ...without counting as a relayed signaling message.
    assert signaling_event("ice_servers") is None
