"""The 3+3 design as AMASS-1 ran it, live and in simulation, and its exact operating characteristics.

Cohorts of 3 at the current level, escalation only:

- 0/3 with a DLT: escalate;
- 1/3: treat 3 more at the same level;
- at most 1/6: escalate;
- 2 or more (of 3 or of 6): stop; the level below is the maximum tolerated dose (none
  when it happens at the first level);
- escalating past the top level stops with the top level as the MTD;
- then a dose-expansion cohort is treated at the MTD.

`step` is the rule, vectorised over any number of trials; `decide` applies it to a
live trial's cohorts, and `simulate` to many simulated trials, so the two cannot
disagree. `exact` enumerates the outcomes of each level (0-3 DLTs in the first three,
0-3 in the next three) and multiplies along the escalation path: no simulation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy.special import comb

from .decisions import Cohort, Decision, EscalationInputError, OperatingCharacteristics, check_tox

COHORT = 3

# rule codes returned by `step`
TREAT_SAME, ESCALATE, STOP_MTD_BELOW, STOP_TOP = 0, 1, 2, 3
RULES = {
    "escalate_0_of_3": "0/3 with a DLT: escalate to the next level",
    "expand_1_of_3": "1/3 with a DLT: treat 3 more patients at the same level",
    "escalate_1_of_6": "at most 1/6 with a DLT: escalate to the next level",
    "stop_2_plus": "2 or more patients with a DLT: stop; the level below is the MTD",
    "stop_2_plus_first": "2 or more patients with a DLT at the first level: stop; no level is tolerated",
    "top_tolerated": "the top level is tolerated (0/3 or at most 1/6): it is the MTD",
}


def step(n_here: npt.ArrayLike, dlt_here: npt.ArrayLike) -> np.ndarray:
    """What the data at the current level call for: TREAT_SAME, ESCALATE or STOP_MTD_BELOW."""
    n, dlt = np.asarray(n_here), np.asarray(dlt_here)
    escalate = ((n == 3) & (dlt == 0)) | ((n == 6) & (dlt <= 1))
    same = (n == 3) & (dlt == 1)
    return np.where(escalate, ESCALATE, np.where(same, TREAT_SAME, STOP_MTD_BELOW))


def cohorts_from_counts(counts: dict[int, tuple[int, int]]) -> list[Cohort]:
    """The cohorts a 3+3 trial treated, from its DLTs and patients per level ({level: (dlts, patients)}).

    A level has 3 patients (one cohort) or 6 (a second cohort after 1/3); with 6 the first
    cohort had exactly 1 DLT, since 0/3 escalates and 2/3 stops. Levels are treated in order.
    """
    cohorts = []
    for expected, level in enumerate(sorted(counts), 1):
        if level != expected:
            raise EscalationInputError(f"--dlt skips level {expected}: a 3+3 trial escalates one level at a time")
        dlt, n = counts[level]
        if n == COHORT:
            cohorts.append(Cohort(level, COHORT, dlt))
        elif n == 2 * COHORT:
            if dlt == 0:
                raise EscalationInputError(f"level {level}: 0/3 escalates, so 6 patients with 0 DLTs cannot happen")
            cohorts += [Cohort(level, COHORT, 1), Cohort(level, COHORT, dlt - 1)]
        else:
            raise EscalationInputError(f"level {level}: {n} patients; a 3+3 level has 3 or 6")
    return cohorts


def decide(cohorts: Sequence[Cohort], n_levels: int, expansion: int = 0) -> Decision:
    """The live decision after the cohorts so far (each at a level, with its DLT count)."""
    level, n_here, dlt_here = 1, 0, 0
    rule = "start"
    for i, cohort in enumerate(cohorts):
        if cohort.level != level:
            raise EscalationInputError(f"cohort {i + 1} was treated at level {cohort.level}, but the 3+3 rule "
                                       f"called for level {level}")
        if cohort.n != COHORT:
            raise EscalationInputError(f"cohort {i + 1} has {cohort.n} patients; the 3+3 design treats cohorts of 3")
        n_here, dlt_here = n_here + cohort.n, dlt_here + cohort.dlt
        action = int(step(n_here, dlt_here))
        if action == STOP_MTD_BELOW:
            if i != len(cohorts) - 1:
                raise EscalationInputError(f"the trial stopped after cohort {i + 1}; later cohorts cannot follow")
            key = "stop_2_plus_first" if level == 1 else "stop_2_plus"
            mtd = level - 1 or None
            return Decision("stop", None, mtd, key, RULES[key], _expansion(mtd, expansion))
        if action == ESCALATE:
            key = "escalate_0_of_3" if n_here == 3 else "escalate_1_of_6"
            if level == n_levels:
                if i != len(cohorts) - 1:
                    raise EscalationInputError(f"the trial stopped after cohort {i + 1}; later cohorts cannot follow")
                return Decision("stop", None, level, "top_tolerated", RULES["top_tolerated"],
                                _expansion(level, expansion))
            level, n_here, dlt_here, rule = level + 1, 0, 0, key
        else:
            rule = "expand_1_of_3"
    text = "treat the first cohort at level 1" if rule == "start" else RULES[rule]
    return Decision("treat", level, None, rule, text, None)


def _expansion(mtd: int | None, size: int) -> str | None:
    if mtd is None or size == 0:
        return None
    return f"then a dose-expansion cohort of {size} patients at level {mtd}"


def exact(tox: Sequence[float]) -> OperatingCharacteristics:
    """Exact operating characteristics by enumerating each level's outcomes."""
    p = check_tox(tox)
    k = len(p)
    # Binomial(3, p) probabilities written out: scipy's binom.pmf overflows for subnormal p.
    k_dlt = np.arange(COHORT + 1)[:, None]
    first = comb(COHORT, k_dlt) * p[None, :] ** k_dlt * (1 - p[None, :]) ** (COHORT - k_dlt)  # [x1, level]
    second_none = (1 - p) ** COHORT
    escalate = first[0] + first[1] * second_none  # P(leave level j upwards | reached j)
    reach = np.concatenate([[1.0], np.cumprod(escalate)[:-1]])
    stop_here = reach * (1 - escalate)
    p_select = np.zeros(k)
    p_select[:-1] = stop_here[1:]  # stopping at level j selects j - 1
    p_select[-1] = reach[-1] * escalate[-1]
    expected_n = reach * (COHORT + COHORT * first[1])
    expected_dlt = reach * (COHORT * p + first[1] * COHORT * p)
    return OperatingCharacteristics("3+3", p.tolist(), p_select.tolist(), float(stop_here[0]),
                                    expected_n.tolist(), expected_dlt.tolist(), method="exact")


def simulate(tox: Sequence[float], trials: int, rng: np.random.Generator) -> OperatingCharacteristics:
    """Many trials at once, through the same `step` rule; agrees with `exact` within Monte-Carlo error."""
    p = check_tox(tox)
    k = len(p)
    level = np.zeros(trials, dtype=int)
    n_here = np.zeros(trials, dtype=int)
    dlt_here = np.zeros(trials, dtype=int)
    active = np.ones(trials, dtype=bool)
    selected = np.full(trials, -1)
    n = np.zeros((trials, k))
    dlt = np.zeros((trials, k))
    rows = np.arange(trials)
    while active.any():
        idx = rows[active]
        y = rng.binomial(COHORT, p[level[idx]])
        n[idx, level[idx]] += COHORT
        dlt[idx, level[idx]] += y
        n_here[idx] += COHORT
        dlt_here[idx] += y
        action = step(n_here[idx], dlt_here[idx])
        stop = action == STOP_MTD_BELOW
        selected[idx[stop]] = level[idx[stop]] - 1
        up = action == ESCALATE
        top = up & (level[idx] == k - 1)
        selected[idx[top]] = k - 1
        active[idx[stop | top]] = False
        moving = idx[up & ~top]
        level[moving] += 1
        n_here[moving] = 0
        dlt_here[moving] = 0
    p_select = np.array([(selected == j).mean() for j in range(k)])
    return OperatingCharacteristics("3+3", p.tolist(), p_select.tolist(), float((selected == -1).mean()),
                                    n.mean(axis=0).tolist(), dlt.mean(axis=0).tolist(), method="simulation",
                                    trials=trials)
