"""The stroketrial command line: one module per command group, a thin shell over the core and the service.

  root.py           the root command and its groups (`main` builds only the asked command's)
  trials.py         trials, trial show/schema/validate, dictionary, screen, cohort synth
  randomization.py  randomization show/compare/lists/kits/run
  dosing.py         dose, escalation
  design.py         design (sample size, boundaries, power)
  analysis.py       analyze, demo
  server.py         serve, admin, audit, db
  registry.py       registry (matched controls)
  envelopes.py      envelopes (sealed emergency envelopes)
  supply.py         supply (investigational product kits)
  support.py        what every command shares: errors with exit code 2, --json, consoles
"""

from typing import TYPE_CHECKING

from .root import main

if TYPE_CHECKING:
    from .root import app


def __getattr__(name: str) -> object:
    """`app`, the root command with every command, built when first asked for (cli/root.py)."""
    from . import root

    return getattr(root, name)


__all__ = ["app", "main"]
