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


# Whether the page scrolls sideways (`wide`, px) and which elements stick out of their card (`spilled`); a wide
# table scrolling inside its own region (.scroll) is allowed.
LAYOUT = """() => {
  const wide = document.documentElement.scrollWidth - document.documentElement.clientWidth;
  const spilled = [];
  for (const card of document.querySelectorAll('main .card, main section, main form')) {
    const box = card.getBoundingClientRect();
    for (const e of card.querySelectorAll('*')) {
      if (e.closest('.scroll') || e.offsetParent === null || getComputedStyle(e).position === 'absolute') continue;
      const r = e.getBoundingClientRect();
      if (r.width > 0 && (r.right > box.right + 2 || r.left < box.left - 2))
        spilled.push((e.getAttribute('data-testid') || e.name || e.tagName) + ' in '
                     + (card.getAttribute('data-testid') || card.id || card.tagName));
    }
  }
  return {wide, spilled: [...new Set(spilled)].slice(0, 8)};
}"""


def page_problems(page, where: str) -> list[str]:
    """What axe finds, a page wider than the screen and anything spilling out of its card, one line each."""
    problems = []
    try:
        assert_accessible(page, where)
    except AssertionError as failure:
        problems.append(str(failure))
    layout = page.evaluate(LAYOUT)
    if layout["wide"] > 1:
        problems.append(f"{where}: the page scrolls sideways by {layout['wide']} px")
    if layout["spilled"]:
        problems.append(f"{where}: out of its card: {layout['spilled']}")
    return problems
