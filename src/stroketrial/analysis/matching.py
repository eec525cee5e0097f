"""Propensity-score matching of trial patients to registry controls, as R's MatchIt does it.

`match` reproduces `MatchIt::matchit(method = "nearest", distance = "glm", link = "linear.logit",
caliper = c, std.caliper = TRUE, estimand = "ATT", discard = "none")`: a logistic propensity model,
greedy nearest-neighbour matching on its logit, MatchIt's matching weights and the balance that
`summary()` prints. tests/reference/make_matchit_reference.R holds the values it is checked against.

How MatchIt's nearest-neighbour matching goes (MatchIt 4.5 nn_matchC_vec.cpp, with its fixes of issues #159 and #163):

- All patients are sorted by distance (ties in row order). Treated patients are taken in `order`; with
  1:k matching they are taken k times over: every treated patient gets a first control, then every one
  a second, and so on (not k controls each before the next treated patient).
- A treated patient's match is the nearer of the nearest still-available control below it and the one
  above it in that sort; on equal distance the one below wins. A control beyond the caliper is never
  taken.
- Exact matching runs the same algorithm separately within each stratum of the exact variables.
- Weights (ATT): a matched treated patient 1; each control the sum, over the treated patients it is
  matched to, of 1 / (that patient's number of controls); then the controls' weights are scaled to sum
  to the number of matched controls.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import linprog
from scipy.special import expit

from .result import AnalysisInputError

ORDERS = ("largest", "smallest", "random", "data")
OUTPUT_COLUMNS = ("propensity", "distance", "matched", "subclass", "weights")
DISTANCE_TERM = "distance"
# MatchIt's tolerance for "no difference" and for a standard deviation too small to divide by.
_SQRT_EPS = math.sqrt(np.finfo(float).eps)


class MatchingInputError(AnalysisInputError):
    """Data or settings propensity matching cannot use; the message names the column or setting."""


@dataclass(frozen=True)
class MatchingSpec:
    """How to match: MatchIt's nearest-neighbour settings.

    covariates: the propensity model's columns. Text and categorical columns become one indicator per
        level, the first level (sorted, or the categorical's order) dropped in the model as R's
        model.matrix does; bool columns are 0/1.
    ratio: controls per treated patient (1:k).
    caliper: the largest distance allowed within a matched set, in standard deviations of the distance
        (the logit of the propensity score, over all patients); None for no caliper.
    exact: columns whose values a treated patient and its controls must share.
    replace: whether a control may be matched to more than one treated patient.
    order: the order treated patients choose in (MatchIt's m.order): "largest" or "smallest" propensity
        first, "random" (needs a seed), or "data" (row order).
    """

    covariates: tuple[str, ...]
    ratio: int = 1
    caliper: float | None = 0.2
    exact: tuple[str, ...] = ()
    replace: bool = False
    order: str = "largest"

    def __post_init__(self) -> None:
        object.__setattr__(self, "covariates", _names("covariates", self.covariates))
        object.__setattr__(self, "exact", _names("exact", self.exact, allow_empty=True))
        if isinstance(self.ratio, bool) or not isinstance(self.ratio, (int, np.integer)) or self.ratio < 1:
            raise MatchingInputError(f"ratio {self.ratio!r} is not allowed: give a whole number of controls, 1 or more")
        if self.caliper is not None and (isinstance(self.caliper, bool) or not isinstance(self.caliper, (int, float))
                                         or not 0 < self.caliper < math.inf):
            raise MatchingInputError(f"caliper {self.caliper!r} is not allowed: give a positive number of SDs, or None")
        if self.order not in ORDERS:
            raise MatchingInputError(f"order {self.order!r} is not allowed: use one of {', '.join(ORDERS)}")
        object.__setattr__(self, "ratio", int(self.ratio))  # a NumPy integer would not survive to_json
        if self.caliper is not None:
            object.__setattr__(self, "caliper", float(self.caliper))


def _names(setting: str, names: Iterable[str], allow_empty: bool = False) -> tuple[str, ...]:
    if isinstance(names, str):
        names = (names,)
    names = tuple(names)
    if not names and not allow_empty:
        raise MatchingInputError(f"{setting}: name at least one column")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise MatchingInputError(f"{setting}: {', '.join(repeated)} named more than once")
    return names


# --- balance -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupComparison:
    """Treated against control on one term, in one sample (all patients, or matched and weighted)."""

    mean_treated: float
    mean_control: float
    smd: float  # standardized mean difference: (treated - control) / SD of the treated in the full sample
    variance_ratio: float | None  # treated / control; None for a binary term


@dataclass(frozen=True)
class TermBalance:
    term: str  # a column, or column[level] for a level of a categorical column
    binary: bool
    before: GroupComparison
    after: GroupComparison | None  # None when no weights were given


@dataclass(frozen=True)
class BalanceTable:
    """Covariate balance as MatchIt's summary() reports it (s.d.denom = "treated", the ATT's)."""

    terms: tuple[TermBalance, ...]

    def term(self, name: str) -> TermBalance:
        for row in self.terms:
            if row.term == name:
                return row
        raise KeyError(name)

    def to_frame(self) -> pd.DataFrame:
        rows = []
        for row in self.terms:
            record: dict[str, Any] = {"term": row.term, "binary": row.binary}
            for when, comparison in (("before", row.before), ("after", row.after)):
                if comparison is not None:
                    record.update({f"{key}_{when}": value for key, value in asdict(comparison).items()})
            rows.append(record)
        return pd.DataFrame(rows).set_index("term")

    def to_json(self) -> list[dict[str, Any]]:
        return [_finite_or_none(asdict(row)) for row in self.terms]


def balance_table(
    data: pd.DataFrame, treatment: str, covariates: Sequence[str], weights: Sequence[float] | np.ndarray | None = None
) -> BalanceTable:
    """Balance of each covariate term before, and with `weights` after, matching.

    The standardized mean difference divides by the SD of the treated group in the full, unweighted sample
    (for a 0/1 term sqrt(p(1 - p)) of the treated, otherwise the n - 1 SD), before and after alike, so the
    two are comparable: MatchIt's summary(), cobalt's s.d.denom = "treated". Means and variance ratios
    after matching use the weights.
    """
    covariates = _names("covariates", covariates)
    _check_columns_present(data, treatment, covariates)
    treated = _treatment_indicator(data, treatment)
    _check_complete(data, covariates)
    after_weights = None if weights is None else _checked_weights(weights, len(data))
    terms = _balance_terms(data, covariates)
    return BalanceTable(tuple(_term_balance(name, terms[name].to_numpy(float), treated, after_weights)
                              for name in terms.columns))


def _term_balance(term: str, x: np.ndarray, treated: np.ndarray, weights: np.ndarray | None) -> TermBalance:
    binary = bool(np.all((x == 0) | (x == 1)))
    sd = _treated_sd(x, treated, binary)
    before = _compare_groups(x, treated, np.ones_like(x), sd, binary)
    after = None if weights is None else _compare_groups(x, treated, weights, sd, binary)
    return TermBalance(term, binary, before, after)


def _compare_groups(x: np.ndarray, treated: np.ndarray, w: np.ndarray, sd: float, binary: bool) -> GroupComparison:
    x1, w1, x0, w0 = x[treated], w[treated], x[~treated], w[~treated]
    mean_treated, mean_control = _weighted_mean(x1, w1), _weighted_mean(x0, w0)
    difference = mean_treated - mean_control
    # MatchIt leaves a difference it counts as none (below sqrt(eps)) unstandardized, and gives no SMD or
    # variance ratio when both groups have fewer than two weighted patients.
    too_small = np.count_nonzero(w1) < 2 and np.count_nonzero(w0) < 2
    smd = difference if abs(difference) <= _SQRT_EPS else math.nan if too_small else difference / sd
    ratio = None
    if not binary:
        ratio = math.nan if too_small else _divide(_weighted_variance(x1, w1, False), _weighted_variance(x0, w0, False))
    return GroupComparison(mean_treated, mean_control, smd, ratio)


def _divide(numerator: float, denominator: float) -> float:
    """As R divides: x / 0 is Inf, 0 / 0 is NaN."""
    if denominator == 0 or math.isnan(denominator) or math.isnan(numerator):
        return math.nan if numerator == 0 or math.isnan(numerator) or math.isnan(denominator) else math.inf
    return numerator / denominator


def _treated_sd(x: np.ndarray, treated: np.ndarray, binary: bool) -> float:
    sd = math.sqrt(_weighted_variance(x[treated], np.ones(int(treated.sum())), binary))
    if not math.isfinite(sd) or sd < _SQRT_EPS:
        sd = _pooled_sd(x, treated, binary)  # a constant in the treated: MatchIt's fallback
    return sd


def _weighted_mean(x: np.ndarray, w: np.ndarray) -> float:
    total = w.sum()
    return float((x * w).sum() / total) if total > 0 else math.nan


def _weighted_variance(x: np.ndarray, w: np.ndarray, binary: bool) -> float:
    """MatchIt's wvar: p(1 - p) for a 0/1 term, otherwise the reliability-weights variance (cov.wt's)."""
    if w.sum() <= 0:
        return math.nan
    w = w / w.sum()
    mean = float((w * x).sum())
    if binary:
        return mean * (1 - mean)
    denominator = 1 - float((w**2).sum())
    return float((w * (x - mean) ** 2).sum()) / denominator if denominator > 0 else math.nan


def _pooled_sd(x: np.ndarray, treated: np.ndarray, binary: bool) -> float:
    n = len(x)
    groups = (x[treated], x[~treated])
    if binary:
        return math.sqrt(sum(g.sum() * (1 - g.sum() / len(g)) / n for g in groups if len(g)))
    centred = np.concatenate([g - g.mean() for g in groups if len(g)])
    return math.sqrt(float((centred**2).sum()) / (n - 1))


def _checked_weights(weights: Sequence[float] | np.ndarray, n: int) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    if w.shape != (n,):
        raise MatchingInputError(f"weights: {w.size} values for {n} rows; give one weight per row")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise MatchingInputError("weights: every weight must be a finite number, 0 or more")
    return w


# --- the propensity model ------------------------------------------------------------------------------


def propensity_scores(data: pd.DataFrame, treatment: str, covariates: Sequence[str]) -> np.ndarray:
    """P(treated | covariates) from a main-effects logistic regression, as glm(binomial) fits it.

    Fitted by Newton-Raphson to the maximum-likelihood estimate itself (steps below 1e-10), not to a
    deviance tolerance, so the scores do not depend on where an iterative fit stopped; a separated model
    (no estimate exists) is refused before fitting. A term that is a linear combination of earlier ones
    (a constant column, a duplicated one) is left out, as glm leaves its coefficient NA.
    """
    return np.asarray(expit(_propensity_logit(data, treatment, _names("covariates", covariates))))


def _propensity_logit(data: pd.DataFrame, treatment: str, covariates: tuple[str, ...]) -> np.ndarray:
    _check_columns_present(data, treatment, covariates)
    treated = _treatment_indicator(data, treatment)
    _check_complete(data, covariates)
    design, sources = _model_matrix(data, covariates)
    design = design[_independent_columns(design)]
    _refuse_separation(data, design, sources, treated)
    x = design.to_numpy(float)
    return np.asarray(x @ _logistic_mle(x, treated.astype(float)))


def _model_matrix(data: pd.DataFrame, covariates: Sequence[str]) -> tuple[pd.DataFrame, dict[str, str]]:
    """An intercept, then each covariate: numeric as it is, categorical as indicators without its first level;
    and the covariate each term comes from."""
    columns = {"(Intercept)": pd.Series(1.0, index=data.index)}
    sources = {}
    for name in covariates:
        terms = _term_columns(data[name], name, drop_first=True)
        columns.update(terms)
        sources.update(dict.fromkeys(terms, name))
    return pd.DataFrame(columns), sources


def _balance_terms(data: pd.DataFrame, covariates: Sequence[str]) -> pd.DataFrame:
    """The terms balance is reported on: every level of a categorical column (summary.matchit's choice)."""
    columns: dict[str, pd.Series] = {}
    for name in covariates:
        columns.update(_term_columns(data[name], name, drop_first=False))
    return pd.DataFrame(columns)


def _term_columns(column: pd.Series, name: str, drop_first: bool) -> dict[str, pd.Series]:
    if _is_categorical(column):
        levels = _levels(column)
        kept = levels[1:] if drop_first else levels
        return {f"{name}[{level}]": (column == level).astype(float) for level in kept}
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        return {name: column.astype(float)}
    raise MatchingInputError(f"covariate {name!r} has dtype {column.dtype}: give numbers, bools, text or categories")


def _is_categorical(column: pd.Series) -> bool:
    return isinstance(column.dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(column) or \
        pd.api.types.is_string_dtype(column)


def _levels(column: pd.Series) -> list[Any]:
    """The levels seen in the data: a categorical's in its order, text sorted (as R's factor() does)."""
    present = set(column.dropna().unique())
    if isinstance(column.dtype, pd.CategoricalDtype):
        return [level for level in column.cat.categories if level in present]
    return sorted(present, key=str)


def _independent_columns(design: pd.DataFrame) -> list[str]:
    kept: list[str] = []
    for name in design.columns:
        candidate = design[[*kept, name]].to_numpy(float)
        if np.linalg.matrix_rank(candidate) == len(kept) + 1:
            kept.append(name)
    return kept


def _refuse_separation(data: pd.DataFrame, design: pd.DataFrame, sources: Mapping[str, str],
                       treated: np.ndarray) -> None:
    """Refuse a model in which some combination of terms predicts treatment perfectly, for all or some patients.

    Complete or quasi-complete separation holds exactly when a direction b != 0 has s_i x_i'b >= 0 for every
    patient (s = +1 treated, -1 control), some strictly: a linear programme (Konis 2007), not a look at fitted
    probabilities near 0 or 1, which depends on where a fit stopped. Of such directions the programme takes
    the one with the least absolute coefficients, which names few covariates: the ones to blame.
    """
    signed = _signed_standardized(design.to_numpy(float), treated)
    n, p = signed.shape
    # b = plus - minus; the intercept (column 0) free and uncounted; sum of s_i x_i'b >= 1 makes b != 0
    cost = np.r_[0.0, np.ones(p - 1), 0.0, np.ones(p - 1)]
    both = np.hstack([signed, -signed])
    bounds = [(None, None)] + [(0, None)] * (p - 1) + [(0, 0)] + [(0, None)] * (p - 1)
    fit = linprog(cost, A_ub=np.vstack([-both, -both.sum(axis=0)]), b_ub=np.r_[np.zeros(n), -1.0], bounds=bounds,
                  method="highs")
    if fit.status != 0:  # infeasible: no separating direction
        return
    direction = fit.x[:p] - fit.x[p:]
    covariates = list(dict.fromkeys(sources[term] for term, b in zip(design.columns[1:], direction[1:], strict=True)
                                    if abs(b) > 1e-9))
    raise MatchingInputError(
        f"the propensity model is separated: {', '.join(covariates)} predict(s) treatment perfectly for some or "
        f"all patients{_one_group_levels(data, covariates, treated)}, so no maximum-likelihood fit exists; drop or "
        "merge those covariates or levels"
    )


def _signed_standardized(x: np.ndarray, treated: np.ndarray) -> np.ndarray:
    centre = np.r_[0.0, x[:, 1:].mean(axis=0)]
    scale = np.r_[1.0, x[:, 1:].std(axis=0)]
    return np.where(treated, 1.0, -1.0)[:, None] * (x - centre) / scale


def _one_group_levels(data: pd.DataFrame, covariates: Sequence[str], treated: np.ndarray) -> str:
    """The usual cause, spelled out: a level of a categorical covariate seen in one group only."""
    found = []
    for name in covariates:
        column = data[name]
        if not _is_categorical(column):
            continue
        for level in _levels(column):
            groups = set(treated[(column == level).to_numpy()].tolist())
            if len(groups) == 1:
                found.append(f"{name} {level!r} occurs only in {'treated' if groups == {True} else 'control'} patients")
    return "; " + "; ".join(found) if found else ""


def _logistic_mle(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    beta = np.zeros(x.shape[1])
    for _ in range(100):
        p = expit(x @ beta)
        information = x.T @ (x * (p * (1 - p))[:, None])
        step = np.linalg.solve(information, x.T @ (y - p))
        beta = beta + step
        if np.max(np.abs(step)) <= 1e-10 * (1 + np.max(np.abs(beta))):
            return beta
    raise RuntimeError("the logistic propensity model did not converge in 100 Newton steps")


# --- input checks --------------------------------------------------------------------------------------


def _check_columns_present(data: pd.DataFrame, treatment: str, columns: Iterable[str]) -> None:
    missing = [name for name in (treatment, *columns) if name not in data.columns]
    if missing:
        present = ", ".join(map(str, data.columns))
        raise MatchingInputError(f"column {missing[0]!r} is not in the data (its columns: {present})")


def _treatment_indicator(data: pd.DataFrame, treatment: str) -> np.ndarray:
    column = data[treatment]
    if column.isna().any():
        raise MatchingInputError(f"treatment column {treatment!r} is missing in {int(column.isna().sum())} rows")
    if pd.api.types.is_bool_dtype(column):
        treated = column.to_numpy(bool)
    else:
        values = set(column.unique().tolist())
        if not pd.api.types.is_numeric_dtype(column) or not values <= {0, 1}:
            shown = ", ".join(map(repr, sorted(values - {0, 1}, key=str)[:5]))
            raise MatchingInputError(f"treatment column {treatment!r} must be 0/1 or bool; it has {shown}")
        treated = column.to_numpy(float) == 1
    if treated.all() or not treated.any():
        group = "control" if treated.all() else "treated"
        raise MatchingInputError(f"treatment column {treatment!r} has no {group} patients: matching needs both")
    return treated


def _check_complete(data: pd.DataFrame, columns: Iterable[str]) -> None:
    for name in columns:
        column = data[name]
        missing = column.isna().to_numpy(copy=True)
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            missing |= ~np.isfinite(column.to_numpy(float))
        if missing.any():
            rows = ", ".join(map(str, data.index[missing][:5]))
            raise MatchingInputError(
                f"covariate {name!r} is missing (or infinite) in {int(missing.sum())} rows (rows {rows}"
                f"{', ...' if missing.sum() > 5 else ''}); impute them or leave those patients out first"
            )


# --- matching ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MatchResult:
    """The matched sample.

    data: the input rows plus propensity (P(treated)), distance (its logit), matched, subclass (the matched
        set's number, 1 up in row order of the treated; NaN when unmatched, and for every row when matching
        with replacement, where sets overlap, as in MatchIt) and weights (MatchIt's ATT matching weights).
    matched_sets: each matched treated patient's row label -> its controls' row labels, nearest first.
    caliper_distance: the caliper in distance (logit) units, None without one.
    n_unmatched_treated: treated patients with no control within the caliper (or their exact stratum);
        MatchIt's summary calls them Unmatched (its Discarded row counts common-support discards, none here).
    """

    data: pd.DataFrame
    matched_sets: Mapping[Hashable, tuple[Hashable, ...]]
    caliper_distance: float | None
    n_treated: int
    n_control: int
    n_matched_treated: int
    n_matched_control: int
    balance: BalanceTable
    spec: MatchingSpec

    @property
    def n_unmatched_treated(self) -> int:
        return self.n_treated - self.n_matched_treated

    @property
    def n_unmatched_control(self) -> int:
        return self.n_control - self.n_matched_control

    def to_json(self) -> dict[str, Any]:
        return {
            "method": "nearest-neighbour propensity-score matching (MatchIt: glm, linear.logit, ATT)",
            "spec": asdict(self.spec),
            "caliper_distance": self.caliper_distance,
            "n_treated": self.n_treated,
            "n_control": self.n_control,
            "n_matched_treated": self.n_matched_treated,
            "n_matched_control": self.n_matched_control,
            "n_unmatched_treated": self.n_unmatched_treated,
            "n_unmatched_control": self.n_unmatched_control,
            "matched_sets": [{"treated": _json_label(t), "controls": [_json_label(c) for c in cs]}
                             for t, cs in self.matched_sets.items()],
            "balance": self.balance.to_json(),
        }


def match(data: pd.DataFrame, treatment: str, spec: MatchingSpec, seed: int | None = None) -> MatchResult:
    """Match treated patients to controls on the logit of the propensity score, as MatchIt's method "nearest"."""
    extra_exact = tuple(name for name in spec.exact if name not in spec.covariates)
    _check_columns_present(data, treatment, (*spec.covariates, *extra_exact))
    clashing = [name for name in OUTPUT_COLUMNS if name in data.columns]
    if clashing:
        raise MatchingInputError(f"the data already have a column {clashing[0]!r}, which matching adds; rename it")
    if not data.index.is_unique:
        repeated = data.index[data.index.duplicated()][0]
        raise MatchingInputError(f"row label {_json_label(repeated)!r} is used more than once; the matched sets name "
                                 "patients by their row labels, so give each its own (e.g. reset_index())")
    if spec.order == "random" and seed is None:
        raise MatchingInputError("order 'random' needs a seed, so the match can be made again")
    treated = _treatment_indicator(data, treatment)
    _check_complete(data, extra_exact)
    distance = _propensity_logit(data, treatment, spec.covariates)
    caliper = None if spec.caliper is None else spec.caliper * float(np.std(distance, ddof=1))
    sets = _match_all_strata(data, treated, distance, spec, caliper, np.random.default_rng(seed))
    if not sets:
        raise MatchingInputError(f"no treated patient has a control within the caliper ({spec.caliper} SD): "
                                 "widen it, or drop exact variables")
    weights = _matching_weights(len(data), treated, sets)
    out = data.copy()
    out["propensity"] = expit(distance)
    out["distance"] = distance
    out["matched"] = weights > 0
    out["subclass"] = np.nan if spec.replace else _subclasses(len(data), sets)
    out["weights"] = weights
    labels = data.index
    return MatchResult(
        data=out,
        matched_sets={labels[t]: tuple(labels[c] for c in cs) for t, cs in sets.items()},
        caliper_distance=caliper,
        n_treated=int(treated.sum()),
        n_control=int((~treated).sum()),
        n_matched_treated=int((weights[treated] > 0).sum()),
        n_matched_control=int((weights[~treated] > 0).sum()),
        balance=balance_table(out, treatment, (DISTANCE_TERM, *spec.covariates, *extra_exact), weights),
        spec=spec,
    )


def _match_all_strata(
    data: pd.DataFrame, treated: np.ndarray, distance: np.ndarray, spec: MatchingSpec, caliper: float | None,
    rng: np.random.Generator,
) -> dict[int, list[int]]:
    """Row positions: each matched treated patient's -> its controls', treated patients in row order."""
    sets: dict[int, list[int]] = {}
    for rows in _exact_strata(data, spec.exact):
        in_stratum = treated[rows]
        if in_stratum.all() or not in_stratum.any():
            continue
        order = _treated_order(distance[rows][in_stratum], spec.order, rng)
        found = _nearest_neighbours(distance[rows], in_stratum, order, spec.ratio, caliper, spec.replace)
        sets.update({int(rows[t]): [int(rows[c]) for c in cs] for t, cs in found.items()})
    return dict(sorted(sets.items()))


def _exact_strata(data: pd.DataFrame, exact: tuple[str, ...]) -> list[np.ndarray]:
    if not exact:
        return [np.arange(len(data))]
    keys = data[list(exact)].reset_index(drop=True)
    return [np.asarray(rows) for rows in keys.groupby(list(exact), sort=True, observed=True).indices.values()]


def _treated_order(treated_distance: np.ndarray, order: str, rng: np.random.Generator) -> np.ndarray:
    """Positions among the treated, in the order they choose; ties in row order (R's order() is stable)."""
    if order == "largest":
        return np.argsort(-treated_distance, kind="stable")
    if order == "smallest":
        return np.argsort(treated_distance, kind="stable")
    if order == "random":
        return rng.permutation(len(treated_distance))
    return np.arange(len(treated_distance))


def _nearest_neighbours(
    distance: np.ndarray, treated: np.ndarray, order: np.ndarray, ratio: int, caliper: float | None, replace: bool
) -> dict[int, list[int]]:
    """Greedy matching within one stratum: positions of treated -> positions of their controls."""
    by_distance = np.argsort(distance, kind="stable")
    rank = np.empty(len(distance), dtype=int)
    rank[by_distance] = np.arange(len(distance))
    sorted_distance = distance[by_distance]
    available = [r for r in range(len(distance)) if not treated[by_distance[r]]]  # ranks of free controls
    treated_rows = np.flatnonzero(treated)[order]
    sets: dict[int, list[int]] = {int(t): [] for t in treated_rows}
    for _ in range(ratio):  # round by round: each treated patient's first control, then each one's second...
        for t in treated_rows:
            taken = {int(rank[c]) for c in sets[int(t)]}
            chosen = _nearest_available(int(rank[t]), sorted_distance, available, taken, caliper)
            if chosen is None:
                continue
            sets[int(t)].append(int(by_distance[available[chosen]]))
            if not replace:
                available.pop(chosen)
    return {t: cs for t, cs in sets.items() if cs}


def _nearest_available(
    treated_rank: int, sorted_distance: np.ndarray, available: list[int], taken: set[int], caliper: float | None
) -> int | None:
    """Index into `available` of the control to match, or None when none is within the caliper."""
    split = bisect_left(available, treated_rank)
    below = next((i for i in range(split - 1, -1, -1) if available[i] not in taken), None)
    above = next((i for i in range(split, len(available)) if available[i] not in taken), None)
    here = sorted_distance[treated_rank]
    gap_below = math.inf if below is None else abs(here - sorted_distance[available[below]])
    gap_above = math.inf if above is None else abs(here - sorted_distance[available[above]])
    limit = math.inf if caliper is None else caliper
    below_within, above_within = gap_below <= limit, gap_above <= limit
    if below_within and (not above_within or gap_below <= gap_above):
        return below
    return above if above_within else None


def _matching_weights(n: int, treated: np.ndarray, sets: Mapping[int, Sequence[int]]) -> np.ndarray:
    """MatchIt's ATT weights from matched sets of row positions (weights.matrix / weights_matrixC)."""
    weights = np.zeros(n)
    for t, controls in sets.items():
        weights[t] = 1.0
        for c in controls:
            weights[c] += 1.0 / len(controls)
    control_weights = weights[~treated]
    if control_weights.sum() > 0:
        weights[~treated] = control_weights * np.count_nonzero(control_weights) / control_weights.sum()
    return weights


def _subclasses(n: int, sets: Mapping[int, Sequence[int]]) -> np.ndarray:
    subclass = np.full(n, np.nan)
    for number, (t, controls) in enumerate(sorted(sets.items()), start=1):
        subclass[[t, *controls]] = number
    return subclass


def _json_label(label: Hashable) -> Any:
    if isinstance(label, np.generic):
        return label.item()
    return label if isinstance(label, (int, float, str)) else str(label)


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
