from urllib.parse import quote, unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage_core import ConfigurationError
from storage_core._urls import url_secrets
from storage_core.backend import Secret, parse_url, redact_text


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
    assert str(url) == "postgresql://bob:***@h/db"


# Issue 17: secrets in URLs of every shape. A and B are canary pieces; neither
# may show, whole or in part, wherever the URL is shown.
A, B = "Kq7VxLm", "Rt4WzPn"


def hidden(*texts: str) -> bool:
    return not any(piece in text for piece in (A, B) for text in texts)


@pytest.mark.parametrize("sep", ["/", "#", "?", "/x#1?", "? #"])
def test_unparseable_url_hides_everything_before_the_last_at(sep: str) -> None:
    # The example: postgresql://app:pw/x#1@127.0.0.1:5432/db printed pw/x#1.
    url = f"postgresql://app:{A}{sep}{B}@127.0.0.1:5432/db"
    with pytest.raises(ConfigurationError) as info:
        parse_url(url)
    assert hidden(str(info.value))
    if " " not in sep:  # free text ends a URL at a space
        assert hidden(redact_text(url))
    assert "app:***@127.0.0.1:5432/db" in str(info.value)
    assert "%2F" in str(info.value)  # says how to write it


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://app/x:{A}@h/db",  # a / in the user name: the password in the path
        f"postgresql:///x:{A}@h/db",
        f"postgresql://app?c=d:{A}@h/db",  # the password in a query value
        f"postgresql://app?x:{A}@h/db",  # ... or a query key
        f"postgresql://app#{A}@h/db",  # dropped as a fragment, silently
        f"postgresql://app:{A} {B}@h/db",
        f"libsql://h?authToken={A}#{B}",
    ],
)
def test_ambiguous_urls_are_refused_without_their_secrets(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_url(url)
    assert hidden(str(info.value))
    assert "***" in str(info.value)


@pytest.mark.parametrize(
    ("url", "user", "password"),
    [
        (f"postgresql://app:{A}@{B}@h/db", "app", f"{A}@{B}"),
        (f"postgresql://app:{A}:{B}@h/db", "app", f"{A}:{B}"),
        (f"postgresql://us@r:{A}@h/db", "us@r", A),
        (f"postgresql://app:{A}%2F%3F%23%40{B}@h/db", "app", f"{A}/?#@{B}"),
    ],
)
def test_raw_at_and_colon_and_encoded_passwords(url: str, user: str, password: str) -> None:
    parsed = parse_url(url)
    assert parsed.username == user and parsed.password == Secret(password)
    assert (parsed.host, parsed.path) == ("h", "db")
    assert hidden(str(parsed), repr(parsed), redact_text(f"cannot open {url}: refused"))
    assert parse_url(parsed.render(reveal=True)) == parsed


@pytest.mark.parametrize(
    "text",
    [
        f"connect to postgresql://app:{A}@{B}@h/db failed",
        f"connect to postgresql://us@r:{A}@h/db failed",
        f"connect to postgresql://app:{A}/{B}#1@h/db failed",
        f"connect to //app:{A}@h/db failed",
        f"bad 'libsql://h?tls=0&authToken={A}#{B}' here",
        f"libsql://h?primary=http://u:{A}@h2 replica",
        f"libsql://h?primary=http%3A%2F%2Fu%3A{A}%40h2 replica",
        f"libsql://h?primary=http%253A%252F%252Fu%253A{A}%2540h2 replica",  # twice encoded
        f"libsql://h?primary=http%3A%2F%2Fh2%3FauthToken%3D{A} replica",
        f"libsql://h?primary=http://h2?authToken={A} replica",
    ],
)
def test_redact_text_hides_every_credential_in_free_text(text: str) -> None:
    shown = redact_text(text)
    assert hidden(shown)
    assert shown.split()[-1] == text.split()[-1]  # the text after the URL stays


def test_nested_url_credentials_are_secret_and_round_trip() -> None:
    nested = f"http://u:{A}@h2:8080?authToken={B}"
    for query in (f"primary={nested}", f"primary={quote(nested, safe='')}"):
        url = parse_url(f"libsql://h?{query}&tls=1")
        assert isinstance(url.query["primary"], Secret)
        assert url.query_value("primary") == nested
        assert hidden(str(url), repr(url), repr(dict(url.query)), redact_text(str(url)))
        assert "h2" in unquote(str(url))  # the nested host still shows
        assert redact_text(str(url)) == str(url)
        assert parse_url(url.render(reveal=True)) == url
    # A nested URL without credentials is an ordinary value.
    assert parse_url("libsql://h?primary=http://h2:1").query["primary"] == "http://h2:1"


def test_revealed_query_secret_round_trips() -> None:
    url = parse_url("libsql://h?authToken=a%2Fb%26c%3D%25")
    assert url.query_value("authToken") == "a/b&c=%"
    assert parse_url(url.render(reveal=True)).query_value("authToken") == "a/b&c=%"


def test_url_secrets_lists_every_form() -> None:
    found = url_secrets(
        f"postgresql://app:{A}%2F{B}@h/db?primary=http%3A%2F%2Fu%3A{B}x%40h2"
        f"&token={A}y+z&other=http://h3"
    )
    for form in (f"{A}%2F{B}", f"{A}/{B}", f"{B}x", f"{A}y+z", f"{A}y z"):
        assert form in found
    assert "app" not in found and "h2" not in found
    assert url_secrets("sqlite:///a@b.db") == []
    assert url_secrets(f"postgresql://app:{A}/{B}@h/db") == [f"{A}/{B}", f"{A}%2F{B}"]


@given(
    st.text(alphabet="/?#@:&=%+", min_size=1, max_size=4),
    st.sampled_from(["postgresql://app:{}@h:5432/db", "libsql://h?authToken={}",
                     "libsql://h?primary=http://u:{}@h2"]),
)
def test_any_raw_reserved_characters_keep_the_password_hidden(sep: str, form: str) -> None:
    url = form.format(f"{A}{sep}{B}")
    try:
        shown = str(parse_url(url))
    except ConfigurationError as exc:
        shown = str(exc)
    assert hidden(shown, redact_text(f"error: {url} failed"))
