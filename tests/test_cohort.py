"""Synthetic cohorts: reproducible, valid under the data dictionary, and realistic in the large."""

import pandas as pd
import pytest

from stroketrial.cohort import synthesize, write_cohort
from stroketrial.eligibility import encode_cohort, read_cohort
from stroketrial.protocol import load_builtin


def test_the_same_seed_gives_the_same_cohort():
    pd.testing.assert_frame_equal(synthesize(500, seed=11), synthesize(500, seed=11))


def test_another_seed_gives_another_cohort():
    assert not synthesize(500, seed=11).equals(synthesize(500, seed=12))


def test_every_value_passes_the_data_dictionary():
    protocol = load_builtin("amass-2")
    table = encode_cohort(protocol, synthesize(5000, seed=5, protocol=protocol))
    assert table.n == 5000


def test_cohort_resembles_published_thrombectomy_populations():
    frame = synthesize(20000, seed=1)
    assert 64 <= frame["age"].median() <= 70
    assert 14 <= frame["nihss"].median() <= 18
    assert frame["aspects"].median() in (8, 9)
    assert 0.40 <= (frame["occlusion_site"] == "m1").mean() <= 0.50
    reperfused = frame["etici"].isin(["2b50", "2b67", "2c", "3"]).mean()
    assert 0.75 <= reperfused <= 0.85
    missing = frame["nihss"].isna().mean()
    assert 0.01 <= missing <= 0.03


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
