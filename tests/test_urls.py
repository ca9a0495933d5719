import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage_core import ConfigurationError, Secret, parse_url, redact_text


def test_sqlite_forms() -> None:
    assert parse_url("sqlite:///chat.db").path == "chat.db"
    assert parse_url("sqlite:////abs/chat.db").path == "/abs/chat.db"
    assert parse_url("sqlite:///:memory:").path == ":memory:"


def test_opaque_file_url() -> None:
    url = parse_url("file:local.db")
    assert url.opaque and url.scheme == "file" and url.path == "local.db"
    assert str(url) == "file:local.db"


def test_server_url_parts_and_driver() -> None:
    url = parse_url("postgresql+asyncpg://bob:pw@db.example:6543/chat?min_size=2")
    assert (url.base_scheme, url.driver) == ("postgresql", "asyncpg")
    assert (url.username, url.host, url.port, url.path) == ("bob", "db.example", 6543, "chat")
    assert url.query_value("min_size") == "2"
    assert isinstance(url.password, Secret) and url.password.reveal() == "pw"


@pytest.mark.parametrize(
    "text",
    [
        "postgresql://bob:Sup3r-Secret@h/db",
        "libsql://db.turso.io?authToken=Sup3r-Secret",
        "ws://h:8080/?tls=0&token=Sup3r-Secret",
    ],
)
def test_secrets_never_shown(text: str) -> None:
    url = parse_url(text)
    for shown in (str(url), repr(url), url.render(), redact_text(text)):
        assert "Sup3r-Secret" not in shown
        assert "***" in shown
    assert "Sup3r-Secret" in url.render(reveal=True)


def test_password_with_reserved_characters_round_trips() -> None:
    url = parse_url("postgresql://bob:p%40ss%2Fw@h/db")
    assert url.password is not None and url.password.reveal() == "p@ss/w"
    assert parse_url(url.render(reveal=True)).password == url.password


@pytest.mark.parametrize("bad", ["", "no-scheme", "://x", 42])
def test_bad_urls(bad: object) -> None:
    with pytest.raises(ConfigurationError):
        parse_url(bad)  # type: ignore[arg-type]


def test_bad_port_does_not_echo_password() -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_url("postgresql://bob:hunter2@h:notaport/db")
    assert "hunter2" not in str(info.value)


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1))
def test_any_password_is_hidden_and_recovered(password: str) -> None:
    from urllib.parse import quote

    url = parse_url(f"postgresql://bob:{quote(password, safe='')}@h/db")
    assert url.password is not None and url.password.reveal() == password
    if len(password) > 3:
        assert quote(password, safe="") not in str(url).replace("***", "")
