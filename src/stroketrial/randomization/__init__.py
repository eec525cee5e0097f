"""Central randomization: pure allocation rules, concealed lists, and balance diagnostics.

State in, allocation and next state out (`Randomizer.allocate`); lists made in
advance for block designs and blinded kits (`lists`); the same rules vectorised
across many simulated trials (`simulate`) and scored (`diagnostics`, `compare`).
"""

from .compare import Candidate, Comparison, candidates, compare
from .diagnostics import BalanceSummary, summarize
from .draws import ArrayDraw, Draw, SeededDraw, SystemDraw
from .factors import CodedCohort, FactorValueError, code_cohort, level_of, patient_levels
from .lists import BlockList, Kit, KitList, ListEntry, ListExhausted, generate_kit_list, permuted_block
from .randomizer import RandomizationError, Randomizer
from .simulate import simulate_slots
from .state import Allocation, ArmSlots, RandomizationState

__all__ = ["Candidate", "Comparison", "candidates", "compare", "BalanceSummary", "summarize", "ArrayDraw", "Draw",
           "SeededDraw", "SystemDraw", "CodedCohort", "FactorValueError", "code_cohort", "level_of",
           "patient_levels", "BlockList", "Kit", "KitList", "ListEntry", "ListExhausted", "generate_kit_list",
           "permuted_block", "RandomizationError", "Randomizer", "simulate_slots", "Allocation", "ArmSlots",
           "RandomizationState"]
