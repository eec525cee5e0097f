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
from .batch_simulation import simulate_slots
from .state import Allocation, ArmSlots, RandomizationState

__all__ = [
           "Allocation",
           "ArmSlots",
           "ArrayDraw",
           "BalanceSummary",
           "BlockList",
           "Candidate",
           "CodedCohort",
           "Comparison",
           "Draw",
           "FactorValueError",
           "Kit",
           "KitList",
           "ListEntry",
           "ListExhausted",
           "RandomizationError",
           "RandomizationState",
           "Randomizer",
           "SeededDraw",
           "SystemDraw",
           "candidates",
           "code_cohort",
           "compare",
           "generate_kit_list",
           "level_of",
           "patient_levels",
           "permuted_block",
           "simulate_slots",
           "summarize",
]
