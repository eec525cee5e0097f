"""`python -m stroketrial.cli ...`, as the test harness and subprocess tests run it."""

from . import main

main()
