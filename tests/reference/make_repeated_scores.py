"""The committed long dataset repeated_scores_long.csv for the mixed-model tests (tests/test_longitudinal.py).

    .venv/bin/python tests/reference/make_repeated_scores.py   (from the repository root)

A made-up trial shaped like ISIS-HERMES (Fugl-Meyer over 2 years): 60 patients, 40 treated ("msc") and 20
controls, six visits of the ISIS-HERMES schedule, each on a day drawn inside that visit's window. The score
is a patient intercept and slope on time, an AR(1) error across visits and a treatment effect growing over
time, rounded to whole points; patients drop out (no visits after the first missed one) or miss single
visits, so the groups are unbalanced and incomplete, which is what makes the Satterthwaite degrees of
freedom and the unstructured covariance worth checking. numpy's default_rng(20160), so the file is made
again exactly with the same numpy; it is an input of make_longitudinal_reference.R, not a reference value.

It also writes isis_hermes_sim_long.csv: stroketrial's own simulate_trial(isis-hermes, n=31, seed=0) long data
(motor NIHSS and mRS at the eight ISIS-HERMES visits, 31 patients, complete), where a random slope on the visit
order is a singular fit (intercept-slope correlation +-1) in lme4: the boundary case. It depends on
simulated_trial.py as it was when the file was made (issue 16); the committed file, not the script, is the input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).parent / "repeated_scores_long.csv"
SINGULAR = Path(__file__).parent / "isis_hermes_sim_long.csv"
# name, nominal day, window half-width in days (ISIS-HERMES's schedule in protocol/builtin/isis-hermes.yaml)
VISITS = [("Inclusion", 0, 0), ("2 weeks", 14, 3), ("1 month", 30, 7), ("4 months", 120, 14),
          ("1 year", 365, 30), ("2 years", 730, 30)]
MEAN = [30.0, 36.0, 40.0, 46.0, 49.0, 50.0]  # control mean Fugl-Meyer at each visit
EFFECT = [0.0, 1.0, 2.5, 5.0, 7.0, 8.0]  # treated minus control


def main() -> None:
    rng = np.random.default_rng(20160)
    n_treated, n_control = 40, 20
    arms = np.array(["msc"] * n_treated + ["control"] * n_control)
    rng.shuffle(arms)
    rows = []
    for i, arm in enumerate(arms):
        intercept = rng.normal(0, 10)
        slope = rng.normal(0, 6)  # points per year
        error = 0.0
        dropped = False
        for k, (name, day, half) in enumerate(VISITS):
            actual = day + (int(rng.integers(-half, half + 1)) if half else 0)
            error = 0.5 * error + rng.normal(0, 4) if k else rng.normal(0, 4)
            value = MEAN[k] + (EFFECT[k] if arm == "msc" else 0) + intercept + slope * actual / 365.25 + error
            if k and not dropped:
                dropped = rng.random() < 0.06
            missed = dropped or (k > 0 and rng.random() < 0.05)
            rows.append({"patient_id": f"H{i + 1:03d}", "arm": arm, "visit": name, "day": actual,
                         "fugl_meyer": None if missed else float(np.clip(round(value), 0, 100))})
    pd.DataFrame(rows).to_csv(OUT, index=False)
    print(f"wrote {OUT}")

    from stroketrial.analysis.simulated_trial import simulate_trial
    from stroketrial.protocol import load_builtin

    long = simulate_trial(load_builtin("isis-hermes"), n=31, seed=0).long
    long[["patient_id", "arm", "visit", "motor_nihss", "mrs"]].to_csv(SINGULAR, index=False)
    print(f"wrote {SINGULAR}")


if __name__ == "__main__":
    main()
