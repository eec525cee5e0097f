"""The pages in English or Simplified Chinese (issue 20, defect 6): every message the interface can show has its
translation in the catalogs, the language comes from the user's choice, else the browser's remembered choice,
else its Accept-Language, and a language the platform does not offer is refused by name."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_file
from fastapi.testclient import TestClient

from stroketrial import i18n
from stroketrial.service import SYSTEM, accounts
from stroketrial.store import Database
from stroketrial.web import create_app

SRC = Path(i18n.__file__).parent
PASSWORD = "password-1"
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2)}


def interface_messages() -> dict[str, str]:
    """Every message id of the templates (`{% trans %}`, `_()`) and of the Python that calls gettext, with where
    it is, as Babel's extractors find them."""
    found: dict[str, str] = {}
    for path in sorted((SRC / "web" / "templates").glob("*.html")):
        for line, message, _comments, _context in extract_from_file(
                "jinja2.ext:babel_extract", str(path), keywords=KEYWORDS,
                options={"extensions": "jinja2.ext.i18n", "newstyle_gettext": "true"}):
            found.setdefault(message if isinstance(message, str) else message[0], f"{path.name}:{line}")
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if "gettext" not in text and " _(" not in text:
            continue
        for line, message, _comments, _context in extract_from_file("python", str(path), keywords=KEYWORDS):
            found.setdefault(message if isinstance(message, str) else message[0],
                             f"{path.relative_to(SRC)}:{line}")
    return found


def test_every_message_of_the_interface_has_its_chinese_translation():
    messages = interface_messages()
    assert len(messages) >= 5  # the extraction itself works (the page frame alone has more)
    missing = {m: where for m, where in messages.items() if not i18n.has_translation(m, i18n.CHINESE)}
    assert not missing, f"{len(missing)} messages without a Chinese translation: " + "; ".join(
        f"{where} {m!r}" for m, where in list(missing.items())[:40])


def test_the_catalogs_translate_only_what_the_interface_says_and_keep_placeholders():
    """A translation keeps every placeholder of its English (`%(name)s`, `{label}`), so a message never loses
    the value it names, and no stale entry lingers once the English changed."""
    messages = interface_messages()
    placeholder = re.compile(r"%\(\w+\)[sdif]|\{\w+\}")
    for english, chinese in i18n.catalog(i18n.CHINESE).items():
        text = chinese if isinstance(chinese, str) else chinese[0]
        assert sorted(placeholder.findall(english)) == sorted(placeholder.findall(text)), (english, text)
    from stroketrial.web.data_words import dictionary_messages

    known = set(messages) | set(dictionary_messages())
    stale = sorted(set(i18n.catalog(i18n.CHINESE)) - known)
    assert not stale, f"catalog entries nothing shows any more: {stale[:20]}"


def test_a_browser_asking_for_chinese_gets_the_chinese_page():
    assert i18n.from_accept_language("zh-CN,zh;q=0.9,en;q=0.8") == i18n.CHINESE
    assert i18n.from_accept_language("en-GB,zh-CN;q=0.5") == i18n.ENGLISH
    assert i18n.from_accept_language("zh-TW,en;q=0.5") == i18n.ENGLISH  # traditional Chinese is not offered
    assert i18n.from_accept_language("fr-FR") is None
    assert i18n.choose("zh_Hans", "en", "en") == i18n.CHINESE
    assert i18n.choose(None, "zh_Hans", "en") == i18n.CHINESE
    assert i18n.choose(None, None, "fr, zh-Hans;q=0.1") == i18n.CHINESE


@pytest.fixture
def db(database_url):
    database = Database(database_url)
    database.migrate()
    with database.write() as session:
        accounts.create_site(session, SYSTEM, "S1", "Tianjin")
        accounts.create_user(session, SYSTEM, "wang", "coordinator", ["S1"], password=PASSWORD)
        accounts.create_user(session, SYSTEM, "li", "coordinator", ["S1"], password=PASSWORD, language="zh_Hans")
    yield database
    database.dispose()


def sign_in(client: TestClient, name: str) -> None:
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    response = client.post("/login", data={"csrf": token, "name": name, "password": PASSWORD, "next": "/"})
    assert response.status_code == 200


def csrf(client: TestClient, page: str = "/") -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get(page).text).group(1)


def test_the_language_follows_the_browser_then_the_users_own_choice(db):
    client = TestClient(create_app(db), headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    page = client.get("/login").text
    assert '<html lang="zh-Hans">' in page and "语言" in page
    sign_in(client, "wang")
    assert "退出登录" in client.get("/").text
    # wang chooses English: stored with the user, so it holds on another device whatever the browser asks for
    response = client.post("/language", data={"csrf": csrf(client), "language": "en", "next": "/"})
    assert response.status_code == 200 and '<html lang="en">' in response.text and "Sign out" in response.text
    other = TestClient(create_app(db), headers={"Accept-Language": "zh-CN"})
    sign_in(other, "wang")
    assert '<html lang="en">' in other.get("/").text
    # li chose Chinese when the account was made: an English browser shows li's pages in Chinese
    english = TestClient(create_app(db), headers={"Accept-Language": "en-US"})
    sign_in(english, "li")
    assert '<html lang="zh-Hans">' in english.get("/").text
    with db.read() as session:
        assert accounts.actor_named(session, "wang").language == "en"


def test_a_language_not_offered_is_refused_by_name_and_nothing_changes(db):
    client = TestClient(create_app(db))
    sign_in(client, "li")
    response = client.post("/language", data={"csrf": csrf(client), "language": "fr", "next": "/"})
    assert response.status_code == 422
    assert "不提供语言 'fr'" in html.unescape(response.text)  # li reads Chinese: the refusal too
    with db.read() as session:
        assert accounts.actor_named(session, "li").language == "zh_Hans"
    with pytest.raises(Exception, match="language 'klingon' is not offered"), db.write() as session:
        accounts.create_user(session, SYSTEM, "x", "coordinator", ["S1"], language="klingon")


def test_the_api_answers_in_english_whatever_the_client_asks_for(db):
    """A program reads the API's messages: a refused screening value names the field's code, in English, even for
    a client whose headers ask for Chinese (the pages show the label, in the user's language)."""
    with db.write() as session:
        from stroketrial.service import trials

        trials.create_trial(session, SYSTEM, "amass-2", ["S1"])
        _user, token = accounts.create_user(session, SYSTEM, "api", "coordinator", ["S1"])
    client = TestClient(create_app(db), headers={"Accept-Language": "zh-CN", "Authorization": f"Bearer {token}"})
    response = client.post("/api/v1/trials/amass-2/patients",
                           json={"patient_id": "P1", "site": "S1", "data": {"age": 140, "sex": "x"}})
    assert response.status_code == 422 and "age" in response.text, response.text
    assert not re.search(r"[\u4e00-\u9fff]", response.text), response.text


def test_a_message_in_two_catalogs_has_one_translation():
    """The catalogs are read together, so the same English in two of them must read the same in Chinese; a word
    whose sense depends on where it stands gets a more precise English ("Consent form", "Action taken")."""
    from babel.messages.pofile import read_po

    seen: dict[str, tuple[str, object]] = {}
    conflicts = []
    for path in sorted((i18n.CATALOGS / i18n.CHINESE).glob("*.po")):
        with path.open("rb") as handle:
            for message in read_po(handle):
                if not message.id:
                    continue
                key = message.id if isinstance(message.id, str) else message.id[0]
                value = message.string if isinstance(message.string, str) else tuple(message.string)
                if key in seen and seen[key][1] != value:
                    conflicts.append(f"{key!r}: {seen[key][0]} {seen[key][1]!r} / {path.name} {value!r}")
                seen.setdefault(key, (path.name, value))
    assert not conflicts, "\n".join(conflicts)
