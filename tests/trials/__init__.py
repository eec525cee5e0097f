"""Per-trial threshold tables: a patient who meets every criterion, and both sides of every threshold."""
