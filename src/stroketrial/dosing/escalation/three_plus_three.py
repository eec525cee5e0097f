"""The 3+3 design, live and in simulation, and its exact operating characteristics, in two variants.

variant="expansion" (the default everywhere), as AMASS-1 ran it, the MTD then confirmed in an expansion
cohort. Cohorts of 3 at the current level, escalation only:

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

variant="classic": the traditional 3+3 in which the MTD must have six patients treated
(Storer BE, Biometrics 1989;45:925-37, the "standard" design; as an algorithm, the 3+3 with
dose de-escalation of Lin Y, Shih WJ, Biostatistics 2001;2:203-15, A = B = 3, C = D = E = 1:
the MTD is the highest level at which at most 1 of 6 patients had a DLT). Escalation runs as
above; when it stops (2 or more DLTs at a level) the level below is the candidate MTD:

- if it had 6 patients (1/3 then 0/3), it is the MTD;
- if it had 3 (0/3), 3 more are treated there: at most 1/6 makes it the MTD, 2 or more of 6
  make the level below it the candidate, and so on down;
- no candidate left: no level is tolerated.

The top level tolerated (0/3 or at most 1/6) is the candidate in the same way: with only
3 patients it is expanded to 6 before it is declared. (bcrm's threep3, another common
implementation, declares the top level after 0/3 without expanding it; this module follows
the rule that the MTD has six patients.) `decide_classic` is the live rule, from the DLTs
and patients per level; `exact(tox, "classic")` is in closed form, and the tests check it
against every path through `decide_classic` and against an enumeration in R
(tests/reference/make_three_plus_three_reference.R).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.special import comb

from .decisions import Cohort, Decision, EscalationInputError, OperatingCharacteristics, check_tox

COHORT = 3
Variant = Literal["expansion", "classic"]
VARIANTS: tuple[Variant, ...] = ("expansion", "classic")

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


def decide(cohorts: Sequence[Cohort], n_levels: int, expansion: int = 0, start_level: int = 1) -> Decision:
    """The live decision after the cohorts so far (each at a level, with its DLT count). `start_level`: where
    these cohorts began (1, or the level a safety review committee chose when it departed from the rule)."""
    if not 1 <= start_level <= n_levels:
        raise EscalationInputError(f"start level {start_level} is not a level from 1 to {n_levels}")
    level, n_here, dlt_here = start_level, 0, 0
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
    text = f"treat the first cohort at level {level}" if rule == "start" else RULES[rule]
    return Decision("treat", level, None, rule, text, None)


def _expansion(mtd: int | None, size: int) -> str | None:
    if mtd is None or size == 0:
        return None
    return f"then a dose-expansion cohort of {size} patients at level {mtd}"


def check_variant(variant: str) -> Variant:
    for known in VARIANTS:
        if variant == known:
            return known
    raise EscalationInputError(f"3+3 variant {variant!r} is not one of {', '.join(VARIANTS)}")


def exact(tox: Sequence[float], variant: str = "expansion") -> OperatingCharacteristics:
    """Exact operating characteristics by enumerating each level's outcomes, for either variant."""
    if check_variant(variant) == "classic":
        return _exact_classic(tox)
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
                                    expected_n.tolist(), expected_dlt.tolist(), method="exact",
                                    settings={"variant": "expansion"})


def _exact_classic(tox: Sequence[float]) -> OperatingCharacteristics:
    """The classic 3+3 in closed form. With b0, b1 the chances of 0 and 1 DLTs in 3 patients at a level:

    - escalate past level j once reached: e_j = b0_j + b1_j b0_j (0/3, or 1/3 then 0/3);
    - arrive at level j as the candidate MTD, having escalated past it: G_top = 1 (the top level
      tolerated) and G_j = (1 - e_j+1) + b0_j+1 G_j+1 (1 - b0_j+1 - b1_j+1): escalation stopped at
      j + 1, or j + 1 was a candidate after 0/3 and its 3 more patients had 2 or more DLTs;
    - declared the MTD: reach_j G_j (b1_j b0_j + b0_j (b0_j + b1_j)), six patients either way.

    Patients at j: 3 on reaching it, 3 more after 1/3, 3 more as a candidate after 0/3. Each cohort is
    treated on the data before it, so the expected DLTs per level are p_j x the expected patients.
    """
    p = check_tox(tox)
    k = len(p)
    q = 1 - p
    b0, b1 = q ** COHORT, COHORT * p * q ** (COHORT - 1)  # written out, as in `exact`
    at_most_one = b0 + b1
    escalate = b0 + b1 * b0
    reach = np.concatenate([[1.0], np.cumprod(escalate)[:-1]])
    arrive = np.ones(k)
    for j in range(k - 2, -1, -1):
        arrive[j] = (1 - escalate[j + 1]) + b0[j + 1] * arrive[j + 1] * (1 - at_most_one[j + 1])
    p_select = reach * arrive * (b1 * b0 + b0 * at_most_one)
    # no level: escalation stopped at level 1, or level 1 was the candidate after 0/3 and failed its 3 more
    p_none = (1 - escalate[0]) + b0[0] * arrive[0] * (1 - at_most_one[0])
    expected_n = COHORT * reach * (1 + b1 + b0 * arrive)
    return OperatingCharacteristics("3+3", p.tolist(), p_select.tolist(), float(p_none),
                                    expected_n.tolist(), (p * expected_n).tolist(), method="exact",
                                    settings={"variant": "classic"})


def decide_classic(counts: Mapping[int, tuple[int, int]], n_levels: int, expansion: int = 0) -> Decision:
    """The classic 3+3's live decision from the DLTs and patients per level so far ({level: (dlts, patients)}).

    The rule depends on these counts only: the highest level with patients is where escalation is (or
    stopped), and the levels below it, from the top down, are the candidates once it stopped."""
    top = _highest_level(counts, n_levels)
    if top == 0:
        return Decision("treat", 1, None, "start", "treat the first cohort at level 1")
    dlt, n = counts[top]
    if dlt <= 1:  # escalation goes on, or the top level is the candidate
        if n == 2 * COHORT and dlt == 0 and top < n_levels:
            raise EscalationInputError(f"level {top}: 6 patients with 0 DLTs cannot happen (0/3 escalates)")
        _check_escalated_below(counts, top, top)
        if n == COHORT and dlt == 1:
            return Decision("treat", top, None, "expand_1_of_3", RULES["expand_1_of_3"])
        if top < n_levels:
            key = "escalate_0_of_3" if n == COHORT else "escalate_1_of_6"
            return Decision("treat", top + 1, None, key, RULES[key])
        if n == COHORT:
            return Decision("treat", top, None, "expand_top_to_6",
                            f"0/3 with a DLT at the top level {top}: treat 3 more there (the MTD needs 6 patients)")
        return Decision("stop", None, top, "mtd_at_most_1_of_6", f"at most 1/6 with a DLT at the top level {top}: "
                        "it is the MTD", _expansion(top, expansion))
    # Escalation stopped at `top` (2 or more DLTs there): the candidates are the levels below it, from the top
    # down. One that had 0/3 and then 2 or more DLTs in its 3 more patients has failed; the next is below it.
    failed = [top]
    for level in range(top - 1, 0, -1):
        dlt, n = counts[level]
        if n == 2 * COHORT and 2 <= dlt <= COHORT:
            failed.append(level)
            continue
        if (n == COHORT and dlt > 0) or dlt > COHORT:
            raise EscalationInputError(f"level {level}: {dlt}/{n} with a DLT cannot be followed by patients at "
                                       f"level {top} under the classic 3+3 rule")
        _check_escalated_below(counts, level, top)
        above = ("levels " if len(failed) > 1 else "level ") + ", ".join(str(f) for f in sorted(failed))
        if n == COHORT:
            return Decision("treat", level, None, "expand_candidate_to_6",
                            f"2 or more with a DLT at {above}: level {level} is the candidate MTD with 3 "
                            "patients; treat 3 more there (the MTD needs 6)")
        return Decision("stop", None, level, "mtd_at_most_1_of_6",
                        f"2 or more with a DLT at {above}; at most 1/6 at level {level}: it is the MTD",
                        _expansion(level, expansion))
    return Decision("stop", None, None, "no_level_tolerated",
                    "2 or more of at most 6 patients with a DLT at every level treated: no level is tolerated")


def _highest_level(counts: Mapping[int, tuple[int, int]], n_levels: int) -> int:
    """The highest level with patients (0: none yet), once the counts are checked level by level."""
    for level, (dlt, n) in counts.items():
        if not 1 <= level <= n_levels:
            raise EscalationInputError(f"--dlt names level {level}; the trial has levels 1 to {n_levels}")
        if n not in (COHORT, 2 * COHORT):
            raise EscalationInputError(f"level {level}: {n} patients; a 3+3 level has 3 or 6")
        Cohort(level, n, dlt)
    top = max(counts, default=0)
    for expected in range(1, top + 1):
        if expected not in counts:
            raise EscalationInputError(f"--dlt skips level {expected}: a 3+3 trial escalates one level at a time")
    return top


def _check_escalated_below(counts: Mapping[int, tuple[int, int]], level: int, top: int) -> None:
    """Every level below `level` was escalated from: 0/3 or 1/6 (1/3 then 0/3), nothing else."""
    for below in range(1, level):
        dlt, n = counts[below]
        if (n, dlt) not in ((COHORT, 0), (2 * COHORT, 1)):
            raise EscalationInputError(f"level {below}: {dlt}/{n} with a DLT cannot be followed by patients at "
                                       f"level {top} under the classic 3+3 rule")


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
