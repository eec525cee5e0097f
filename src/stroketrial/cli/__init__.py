"""The stroketrial command line: one module per command group, a thin shell over the core and the service.

  app.py            the root command and its groups
  trials.py         trials, trial show/schema/validate, dictionary, screen, cohort synth
  randomization.py  randomization show/compare/lists/kits/run
  dosing.py         dose, escalation
  design.py         design (sample size, boundaries, power)
  analysis.py       analyze, demo
  server.py         serve, admin, audit, db
  support.py        what every command shares: errors with exit code 2, --json, consoles
"""

from .app import app, main

__all__ = ["app", "main"]
