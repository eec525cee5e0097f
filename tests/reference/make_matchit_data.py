"""The committed dataset matchit_data.csv for the propensity-matching tests (tests/test_matching.py).

    .venv/bin/python tests/reference/make_matchit_data.py   (from the repository root)

A made-up AMASS-1-like comparison: 60 patients given intra-arterial albumin after successful thrombectomy
(treated = 1) and 400 thrombectomy-registry patients with successful reperfusion (treated = 0). The treated
are somewhat younger, more severe, with better ASPECTS, shorter times to recanalization and more often full
reperfusion, so the groups differ but overlap (no separation), and a few treated at the top of the
propensity range find no control within a 0.2-SD caliper. Time to recanalization has two decimals, so no
two patients share a propensity score: MatchIt's order among equal distances never has to decide a match.
numpy's default_rng(20240611); it is the input of make_matchit_reference.R, not a reference value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).parent / "matchit_data.csv"
SITES = ["ica_intracranial", "tandem_ica_m1", "m1", "m2"]
ETICI = ["2b50", "2b67", "2c", "3"]
YOUNG_TREATED = 6


def cohort(rng: np.random.Generator, n: int, treated: bool) -> pd.DataFrame:
    shift = 1.0 if treated else 0.0
    age = np.clip(rng.normal(69.0 - 6.0 * shift, 11.0, n), 25, 95).round()
    if treated:  # a few young patients (dissection, cardiac embolism), seldom seen in the registry
        age[:YOUNG_TREATED] = rng.normal(36.0, 4.0, YOUNG_TREATED).round()
    nihss = np.clip(rng.normal(14.0 + 3.0 * shift, 5.0, n), 6, 36).round()
    aspects = np.clip(rng.normal(7.8 + 0.5 * shift, 1.3, n), 6, 10).round()
    site_p = [0.12, 0.10, 0.55, 0.23] if treated else [0.15, 0.12, 0.50, 0.23]
    etici_p = [0.12, 0.25, 0.23, 0.40] if treated else [0.25, 0.30, 0.20, 0.25]
    hours = rng.lognormal(np.log(6.5) - 0.3 * shift, 0.55, n).clip(1.5, 24.0).round(2)
    return pd.DataFrame({
        "treated": int(treated),
        "age": age.astype(int),
        "sex": rng.choice(["female", "male"], n, p=[0.40, 0.60] if treated else [0.46, 0.54]),
        "nihss": nihss.astype(int),
        "aspects": aspects.astype(int),
        "occlusion_site": rng.choice(SITES, n, p=site_p),
        "lkw_to_recanalization_h": hours,
        "etici": rng.choice(ETICI, n, p=etici_p),
    })


def main() -> None:
    rng = np.random.default_rng(20240611)
    data = pd.concat([cohort(rng, 60, True), cohort(rng, 400, False)], ignore_index=True)
    # Registry and trial patients interleaved, as a pooled file would be: the row order is MatchIt's "data" order.
    data = data.iloc[rng.permutation(len(data))].reset_index(drop=True)
    data.insert(0, "id", np.arange(1, len(data) + 1))
    data.to_csv(OUT, index=False)


if __name__ == "__main__":
    main()
