"""SASL mechanisms, JAAS strings, principal mapping and the user store, against RFC vectors."""

from __future__ import annotations

import pytest

from failover_gateway.auth import jaas, plain, principals, scram, users

# RFC 7677 section 3.
RFC7677_CLIENT_NONCE = "rOprNGfwEbeRWgbNEkqO"
RFC7677_SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
RFC7677_CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
RFC7677_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_the_scram_client_reproduces_the_rfc_7677_exchange() -> None:
    client = scram.ScramClient("SCRAM-SHA-256", "user", "pencil", nonce=RFC7677_CLIENT_NONCE)
    assert client.first() == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    assert client.final(RFC7677_SERVER_FIRST) == RFC7677_CLIENT_FINAL
    client.verify(RFC7677_SERVER_FINAL)


def test_the_scram_server_reproduces_the_rfc_7677_exchange_from_stored_keys_only() -> None:
    import base64

    credential = scram.make_credential(
        "SCRAM-SHA-256",
        "pencil",
        salt=base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="),
        iterations=4096,
    )
    server = scram.ScramServer("SCRAM-SHA-256", nonce="%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    assert server.first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", credential) == RFC7677_SERVER_FIRST
    assert server.final(RFC7677_CLIENT_FINAL) == RFC7677_SERVER_FINAL
    assert server.username == "user"


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_our_client_and_server_agree_and_a_wrong_password_fails(mechanism: str) -> None:
    credential = scram.make_credential(mechanism, "right")
    for password, ok in (("right", True), ("wrong", False)):
        client, server = (
            scram.ScramClient(mechanism, "alice", password),
            scram.ScramServer(mechanism),
        )
        final = client.final(server.first(client.first(), credential))
        if ok:
            client.verify(server.final(final))
        else:
            with pytest.raises(scram.ScramError, match="invalid user name or password"):
                server.final(final)


def test_an_unknown_scram_user_gets_a_challenge_and_then_the_same_failure() -> None:
    client, server = (
        scram.ScramClient("SCRAM-SHA-512", "nobody", "x"),
        scram.ScramServer("SCRAM-SHA-512"),
    )
    challenge = server.first(client.first(), None)
    assert b",s=" in challenge and b",i=" in challenge
    with pytest.raises(scram.ScramError, match="invalid user name or password"):
        server.final(client.final(challenge))


def test_scram_extensions_and_channel_binding_are_refused() -> None:
    with pytest.raises(scram.ScramError, match="extensions"):
        scram.ScramServer("SCRAM-SHA-256").first(b"n,,n=a,r=abc,tokenauth=true", None)
    with pytest.raises(scram.ScramError, match="channel binding"):
        scram.ScramServer("SCRAM-SHA-256").first(b"p=tls-unique,,n=a,r=abc", None)


def test_plain_messages_round_trip_and_bad_ones_do_not_echo_the_password() -> None:
    assert plain.parse(plain.client_message("alice", "s3cret")) == ("alice", "s3cret")
    with pytest.raises(plain.PlainError) as error:
        plain.parse(b"alice\x00s3cret")
    assert "s3cret" not in str(error.value)
    with pytest.raises(plain.PlainError, match="authorization id"):
        plain.parse(b"bob\x00alice\x00pw")


def test_jaas_strings_from_the_design_card_give_the_credentials() -> None:
    login = jaas.parse(
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        'username="<main-key>" password="<main-secret>";'
    )
    assert (login.family, login.username, login.password) == (
        "PLAIN",
        "<main-key>",
        "<main-secret>",
    )
    assert "main-secret" not in repr(login)
    scram_login = jaas.parse(
        "org.apache.kafka.common.security.scram.ScramLoginModule required username=svc "
        'password="pa\\"ss";'
    )
    assert (scram_login.family, scram_login.password) == ("SCRAM", 'pa"ss')


def test_jaas_errors_name_the_problem_without_the_password() -> None:
    with pytest.raises(jaas.JaasError, match="not supported; valid"):
        jaas.parse('com.sun.security.auth.module.Krb5LoginModule required password="hunter2";')
    with pytest.raises(jaas.JaasError, match="needs password") as error:
        jaas.parse('org.apache.kafka.common.security.plain.PlainLoginModule required username="a";')
    assert "hunter2" not in str(error.value)


@pytest.mark.parametrize(
    ("rules", "dn", "principal"),
    [
        ("DEFAULT", "CN=alice,OU=eng,O=corp", "CN=alice,OU=eng,O=corp"),
        ("RULE:^CN=(.*?),OU=(.*?),O=(.*?)$/$1@$2/L,DEFAULT", "CN=Alice,OU=ENG,O=corp", "alice@eng"),
        ("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,DEFAULT", "CN=kafka,OU=ServiceUsers,O=x", "kafka"),
        ("RULE:^CN=(.*?),OU=(.*?)$/$1/U", "CN=bob,OU=x", "BOB"),
        ("RULE:^CN=(.*?),OU=(.*?)$/$1/U", "O=nothing", None),
    ],
)
def test_principal_mapping_follows_kafkas_rules(rules: str, dn: str, principal: str | None) -> None:
    assert principals.map_principal(dn, principals.parse_rules(rules)) == principal


def test_a_bad_mapping_rule_is_named() -> None:
    with pytest.raises(principals.RuleError, match="expected 'RULE:pattern/replacement/"):
        principals.parse_rules("RULES:oops")


def test_the_user_store_keeps_salted_credentials_and_checks_both_mechanisms() -> None:
    document = {
        "users": {
            "alice": {
                "PLAIN": users.entry_for("PLAIN", "pw-1"),
                "SCRAM-SHA-512": users.entry_for("SCRAM-SHA-512", "pw-1"),
            }
        }
    }
    assert "pw-1" not in str(document)
    store = users.parse(document, "users.yaml")
    assert store.check_plain("alice", "pw-1") and not store.check_plain("alice", "pw-2")
    assert not store.check_plain("mallory", "pw-1")
    credential = store.scram_credential("SCRAM-SHA-512", "alice")
    client, server = (
        scram.ScramClient("SCRAM-SHA-512", "alice", "pw-1"),
        scram.ScramServer("SCRAM-SHA-512"),
    )
    client.verify(server.final(client.final(server.first(client.first(), credential))))


def test_a_malformed_user_store_names_the_user_and_field() -> None:
    with pytest.raises(users.UserStoreError, match=r"users.alice.PLAIN: missing hash"):
        users.parse({"users": {"alice": {"PLAIN": {"salt": "AA==", "iterations": 1}}}}, "u")
    with pytest.raises(users.UserStoreError, match="unknown mechanism; valid: PLAIN"):
        users.parse({"users": {"alice": {"GSSAPI": {}}}}, "u")
