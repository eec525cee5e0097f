"""The password policy: what a new password must be, checked wherever one is set (a new user, a reset).

NIST SP 800-63B asks for length, a check against passwords known to be common, and nothing else (no
composition rules, no periodic expiry). The minimum here is 10 characters (STROKETRIAL_PASSWORD_MIN_LENGTH
may raise it; revision 4 of 800-63B asks 15 where the password is the only factor, as on these pages).
"""

from __future__ import annotations

import os

from .. import i18n
from .errors import Invalid

MAX_LENGTH = 128
DEFAULT_MIN_LENGTH = 10
# The most common passwords of the public breach corpora (the head of the lists NIST points to), lower case;
# a sample, not a dictionary: a guessing attack tries these first.
COMMON = frozenset({
    "password", "password1", "password12", "password123", "password1234", "passw0rd", "p@ssw0rd", "p@ssword",
    "123456789", "1234567890", "12345678910", "0123456789", "987654321", "1111111111", "1234512345",
    "qwerty123", "qwertyuiop", "qwerty1234", "1q2w3e4r5t", "1qaz2wsx3edc", "zaq12wsx", "abc1234567",
    "iloveyou123", "welcome123", "letmein123", "admin12345", "administrator", "changeme123", "trustno1234",
    "football123", "baseball123", "sunshine123", "princess123", "dragon1234", "monkey1234", "superman123",
    "woaini1314", "5201314520", "a123456789", "aa123456789", "abcd123456", "abcdefghij",
})


def min_length() -> int:
    raw = os.environ.get("STROKETRIAL_PASSWORD_MIN_LENGTH", "").strip()
    try:
        value = int(raw) if raw else DEFAULT_MIN_LENGTH
    except ValueError:
        value = 0
    if not 8 <= value <= MAX_LENGTH:
        raise Invalid(i18n.gettext("STROKETRIAL_PASSWORD_MIN_LENGTH={raw} is not allowed: a whole number from 8 to "
                                   "{most}").format(raw=repr(raw), most=MAX_LENGTH),
                      [{"field": "STROKETRIAL_PASSWORD_MIN_LENGTH", "value": raw, "message": i18n.gettext("8 to 128")}])
    return value


def check_password(password: str, user_name: str) -> None:
    """Invalid naming what is wrong (never echoing the password); the rules as NIST SP 800-63B puts them."""
    shortest = min_length()
    problems = []
    if len(password) < shortest:
        problems.append(i18n.gettext("at least {count} characters").format(count=shortest))
    if len(password) > MAX_LENGTH:
        problems.append(i18n.gettext("at most {count} characters").format(count=MAX_LENGTH))
    folded = password.casefold()
    if folded in COMMON:
        problems.append(i18n.gettext("not one of the passwords most often guessed"))
    if len(set(password)) == 1:
        problems.append(i18n.gettext("not one character repeated"))
    name = user_name.strip().casefold()
    if len(name) >= 3 and name in folded:
        problems.append(i18n.gettext("not containing the user name"))
    if problems:
        raise Invalid(i18n.gettext("the password must be {rules}").format(rules="; ".join(problems)),
                      [{"field": "password", "value": "***", "message": "; ".join(problems)}])
