"""axe-core (through axe-playwright-python, which carries its script) on a page open in the browser tests: the
page must have no violation of WCAG 2.1 A/AA or axe's best practices. Each violation is named with its rule, its
impact and the first elements it found, so that a failure says what to fix."""

from __future__ import annotations

from axe_playwright_python.sync_playwright import Axe

_AXE = Axe()
RULES = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]},
         "resultTypes": ["violations"]}


def violations(page) -> list[str]:
    """What axe finds wrong on the page as it is now, one line per rule."""
    results = _AXE.run(page, options=RULES)
    found = []
    for rule in results.response["violations"]:
        where = "; ".join(" ".join(node["target"]) if isinstance(node["target"], list) else str(node["target"])
                          for node in rule["nodes"][:3])
        found.append(f"{rule['id']} ({rule['impact']}): {rule['help']} at {where}")
    return found


def assert_accessible(page, what: str) -> None:
    found = violations(page)
    assert not found, f"{what}: {len(found)} axe violation(s):\n" + "\n".join(found)
