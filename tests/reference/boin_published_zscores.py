"""How far our exact BOIN operating characteristics lie from the published 1000-trial tables.

    python tests/reference/boin_published_zscores.py

For each figure of boin_trialdesign_oc.csv: our exact value, the published one, and the
difference in standard errors of a 1000-trial simulation (from the exact distribution of
trial outcomes). tests/test_escalation.py asserts every |difference| <= 4 SE + 0.05.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from stroketrial.dosing.escalation.boin import Boin

HERE = Path(__file__).parent
DESIGNS = {
    "A": Boin(0.27),
    "B": Boin(0.27, n_earlystop=6, extrasafe=True),
    "C": Boin(0.27, n_earlystop=9, extrasafe=True),
    "D": Boin(0.30, n_earlystop=6, extrasafe=True, escalation_boundary=0.236, deescalation_boundary=0.329),
}


def main() -> None:
    with open(HERE / "boin_trialdesign_oc.csv") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    z_all = []
    for row in rows:
        end = DESIGNS[row["design"]].final_states([float(row[f"tox{j}"]) for j in range(1, 5)])
        w, total = end.probability, end.n.sum(axis=1)
        mean_n = w @ total
        figures = []
        for j in range(4):
            p = w[end.selected == j].sum()
            figures.append((f"select{j + 1}", 100 * p, 100 * np.sqrt(p * (1 - p) / 1000)))
        p = w[end.selected == -1].sum()
        figures.append(("early_stop", 100 * p, 100 * np.sqrt(p * (1 - p) / 1000)))
        figures.append(("n_patients", mean_n, np.sqrt(w @ (total - mean_n) ** 2 / 1000)))
        for j in range(4):
            share = (w @ end.n[:, j]) / mean_n
            figures.append((f"treated{j + 1}", 100 * share,
                            100 * np.sqrt(w @ (end.n[:, j] - share * total) ** 2 / 1000) / mean_n))
        cells = []
        for name, exact, se in figures:
            z = (exact - float(row[name])) / max(se, 1e-9)
            z_all.append(abs(z))
            cells.append(f"{name} {exact:.1f}/{row[name]} ({z:+.1f})")
        print(f"{row['design']}{row['scenario']}: " + "  ".join(cells))
    print(f"\n{len(z_all)} figures: mean |z| {np.mean(z_all):.2f} (0.80 expected by chance), max |z| {max(z_all):.2f}")


if __name__ == "__main__":
    main()
