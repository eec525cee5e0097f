"""Synthetic cohorts: reproducible, valid under the data dictionary, and realistic in the large."""

import numpy as np
import pandas as pd
import pytest

from stroketrial.clinical import VARIABLES
from stroketrial.clinical.cohort_table import TableDataError
from stroketrial.cohort import synthesize, write_cohort
from stroketrial.eligibility import encode_cohort, read_cohort
from stroketrial.protocol import load_builtin


def test_the_same_seed_gives_the_same_cohort():
    pd.testing.assert_frame_equal(synthesize(500, seed=11), synthesize(500, seed=11))


def test_another_seed_gives_another_cohort():
    assert not synthesize(500, seed=11).equals(synthesize(500, seed=12))


def test_every_value_passes_the_data_dictionary():
    protocol = load_builtin("amass-2")
    frame = synthesize(5000, seed=5, protocol=protocol)
    table = encode_cohort(protocol, frame)  # raises TableDataError on any value the dictionary refuses
    assert table.n == 5000
    # Checked here against the data dictionary itself, not through the validator: every value in range or
    # on its scale, and every field the protocol screens on present for nearly everyone.
    for name in frame.columns:
        var = VARIABLES.get(name)
        if var is None:
            assert name.startswith("attestations."), name
            continue
        values = frame[name].dropna()
        if var.low is not None:
            numbers = pd.to_numeric(values)
            assert numbers.between(var.low, var.high).all(), (name, numbers.min(), numbers.max())
        elif var.scale is not None and var.kind in ("category", "grade"):
            assert set(values.astype(str)) <= {m.value for m in var.scale}, name
    screened = set().union(*(c.fields() for c in protocol.criteria)) - {"lkw_to_puncture_h"}
    for name in screened:
        present = frame[name].notna().mean()
        assert present >= (0.8 if name == "aspects" else 0.95), (name, present)  # ASPECTS: anterior occlusions
        assert name in table.low and np.isfinite(table.low[name]).mean() == pytest.approx(present)
    hours = table.low["lkw_to_puncture_h"]  # derived from the two clock times
    expected = (frame["arterial_puncture"] - frame["last_known_well"]).dt.total_seconds() / 3600
    assert hours == pytest.approx(expected.astype(float).to_numpy(), nan_ok=True)
    # and the validator is live on this table: one NIHSS of 43 is refused, naming the row
    broken = frame.copy()
    broken.loc[6, "nihss"] = 43
    with pytest.raises(TableDataError, match=r"row 7 \(patient_id P0000007\): nihss: 43 is out of range"):
        encode_cohort(protocol, broken)


def test_cohort_resembles_published_thrombectomy_populations():
    # HERMES pooled patient-level analysis (Goyal M et al., Lancet 2016;387:1723-31, Table 1; the source the
    # generator's docstring names): age median 68 (IQR 57-77), NIHSS 17 (14-20), ASPECTS 9 (7-10). Quartiles
    # within 2 points (ASPECTS 1) of the published ones; a synthetic cohort is an approximation, not a refit.
    frame = synthesize(20000, seed=1)
    for name, published, tolerance in (("age", (57, 68, 77), 2), ("nihss", (14, 17, 20), 2),
                                       ("aspects", (7, 9, 10), 1)):
        quartiles = frame[name].astype(float).quantile([0.25, 0.5, 0.75]).to_numpy()
        assert np.abs(quartiles - published).max() <= tolerance, (name, quartiles, published)
    assert frame["age"].min() >= 16 and frame["nihss"].max() <= 42


@pytest.mark.xfail(strict=True, reason="the generator's occlusion sites and bridging thrombolysis do not match HERMES, "
                                       "which its docstring cites (M1 53% vs 69% of anterior occlusions; IVT 35% vs "
                                       "83%): a generator to fix, or a source to cite instead")
def test_occlusion_site_and_bridging_thrombolysis_resemble_hermes():
    # HERMES (Goyal 2016, Table 1): occlusion ICA 21%, M1 69%, M2 8%; intravenous alteplase 83%
    frame = synthesize(20000, seed=1)
    anterior = frame["occlusion_site"].isin(["ica_intracranial", "ica_cervical", "tandem_ica_m1", "m1", "m2"])
    share = frame.loc[anterior, "occlusion_site"].value_counts(normalize=True)
    assert abs(share["m1"] - 0.69) <= 0.05
    assert abs(share[["ica_intracranial", "ica_cervical", "tandem_ica_m1"]].sum() - 0.21) <= 0.05
    assert abs(frame["bridging_thrombolysis"].mean() - 0.83) <= 0.05


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_written_cohort_reads_back_to_the_same_screen(tmp_path, suffix):
    protocol = load_builtin("impact-lvo")
    frame = synthesize(300, seed=2, protocol=protocol)
    path = tmp_path / f"cohort{suffix}"
    write_cohort(frame, str(path))
    direct, reread = encode_cohort(protocol, frame), encode_cohort(protocol, read_cohort(path))
    for name in ("nihss", "etici", "lkw_to_randomization_h", "creatinine_umol_l", "pregnant"):
        pd.testing.assert_series_equal(pd.Series(direct.low[name]), pd.Series(reread.low[name]))


def test_a_cohort_needs_patients():
    with pytest.raises(ValueError, match="at least 1 patient"):
        synthesize(0, seed=1)
