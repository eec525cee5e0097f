"""`stroketrial analyze ordinal` reads its CSV without pandas: the same rows, the same covariates, the same answer,
and a clear message for a file it cannot read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from stroketrial.analysis import ordinal
from stroketrial.analysis.dataset import contrast, read_csv_table
from stroketrial.analysis.result import AnalysisInputError
from stroketrial.cli import app

runner = CliRunner()
TRIAL = Path(__file__).parent / "reference" / "amass2_trial.csv"
ARMS = ("albumin", "control")

maybe = st.one_of  # a cell, or one of the ways a CSV says "missing"
rows = st.lists(st.fixed_dictionaries({
    "arm": st.sampled_from(ARMS),
    "mrs_90d": maybe(st.integers(0, 6).map(str), st.sampled_from(["", "NA", "nan"])),
    "age": maybe(st.integers(18, 95).map(str), st.floats(18, 95, allow_nan=False).map(lambda v: f"{v:.2f}"),
                 st.just("")),
    "occlusion": maybe(st.sampled_from(["m1", "m2", "ica", "tandem"]), st.just("N/A")),
}), min_size=4, max_size=60)


def written(tmp_path: Path, records: list[dict[str, str]]) -> Path:
    path = tmp_path / "data.csv"
    path.write_text("arm,mrs_90d,age,occlusion\n" + "".join(
        f"{r['arm']},{r['mrs_90d']},{r['age']},{r['occlusion']}\n" for r in records))
    return path


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=rows)
def test_the_csv_reader_gives_the_contrast_pandas_gives(tmp_path, records):
    path = written(tmp_path, records)
    by_pandas, by_csv = pd.read_csv(path), read_csv_table(path)
    try:
        expected = contrast(by_pandas, "mrs_90d", "arm", *ARMS, ["age", "occlusion"], kind="mrs")
    except AnalysisInputError as refused:
        with pytest.raises(AnalysisInputError) as also:
            contrast(by_csv, "mrs_90d", "arm", *ARMS, ["age", "occlusion"], kind="mrs")
        assert str(also.value) == str(refused)
        return
    got = contrast(by_csv, "mrs_90d", "arm", *ARMS, ["age", "occlusion"], kind="mrs")
    assert got.covariate_names == expected.covariate_names  # age, then occlusion_<level> but the first level
    assert got.dropped == expected.dropped
    np.testing.assert_array_equal(got.treated, expected.treated)
    np.testing.assert_array_equal(got.outcome, expected.outcome)
    np.testing.assert_array_equal(got.covariate_values, expected.covariate_values)


def test_the_reference_trial_gives_the_same_shift_either_way():
    by_pandas = ordinal.proportional_odds(pd.read_csv(TRIAL), "mrs_90d", "arm", *ARMS, ["age", "nihss", "aspects"])
    by_csv = ordinal.proportional_odds(read_csv_table(TRIAL), "mrs_90d", "arm", *ARMS, ["age", "nihss", "aspects"])
    assert by_csv.to_json() == by_pandas.to_json()


def test_a_category_covariate_is_an_indicator_per_level_but_the_first(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("arm,mrs_90d,site\n" + "".join(f"{('albumin', 'control')[i % 2]},{i % 7},{'ABC'[i % 3]}\n"
                                                   for i in range(30)))
    c = contrast(read_csv_table(path), "mrs_90d", "arm", *ARMS, ["site"], kind="mrs")
    assert c.covariate_names == ("site_B", "site_C")
    assert c.covariate_values[:3].tolist() == [[0, 0], [1, 0], [0, 1]]


@pytest.mark.parametrize("content, message", [
    (b"", "not a readable CSV (the file is empty)"),
    (b"arm,mrs_90d\nalbumin,1,9\n", "not a readable CSV (row 2 has 3 fields, the header 2)"),
    (b"arm,mrs_90d,arm\nalbumin,1,2\n", "column 'arm' is named twice in the header"),
    ("arm,mrs_90d\nalbumin,1\n".encode("utf-16"), "not a readable CSV (not UTF-8 text)"),
    (b"arm,mrs_90d\nalbumin,7\ncontrol,1\n", "column 'mrs_90d' holds 7.0; the mRS is 0 to 6"),
    (b"arm,mrs_90d\nalbumin,two\ncontrol,1\n", "column 'mrs_90d' holds 'two', which is not a number"),
    (b"arm,mrs_90d\nalbumin,1\nplacebo,1\n", "column 'arm' holds ['placebo'], not only 'albumin' and 'control'"),
    ("arm,mrs_90d\nalbumin,\u0663\ncontrol,1\n".encode(), "column 'mrs_90d' holds '\u0663', which is not a number"),
    (b"arm,mrs_90d\nalbumin,inf\ncontrol,1\n", "column 'mrs_90d' holds 'inf', which is not a number"),
    # a quote left open would swallow every row after it into one cell, and the analysis run on what is left
    (b'arm,mrs_90d,note\nalbumin,1,"left open\ncontrol,2,x\nalbumin,3,y\n',
     "not a readable CSV (the row starting on line 2: unexpected end of data"),
])
def test_a_file_it_cannot_use_is_named_with_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    result = runner.invoke(app, ["analyze", "ordinal", str(path), "--treatment", "albumin", "--control", "control"])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()) and "Traceback" not in result.output


def test_one_analysis_answers_without_importing_pandas_scipy_or_the_web_stack():
    probe = ("import sys, json\n"
             "from stroketrial.cli import main\n"
             f"sys.argv = ['stroketrial', 'analyze', 'ordinal', {str(TRIAL)!r}, '--treatment', 'albumin', "
             "'--control', 'control', '--adjust', 'age,nihss,aspects', '--json']\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "heavy = ('pandas', 'scipy', 'statsmodels', 'matplotlib', 'sqlalchemy', 'fastapi', 'dask')\n"
             "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & set(heavy))))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    answer, loaded = done.stdout.rsplit("\n", 2)[0], json.loads(done.stdout.rsplit("\n", 2)[1])
    assert json.loads(answer)["measure"] == "common odds ratio"
    assert loaded == []


@pytest.mark.parametrize("age, message", [
    (["", "", "", ""], "column 'age' has no value in either arm: it cannot be adjusted for"),
    (["71", "7O", "65", "80"], "column 'age' holds '7O' among numbers; a covariate is numbers"),
    (["71", "inf", "65", "80"], "column 'age' holds 'inf' among numbers"),
])
def test_a_covariate_it_cannot_adjust_for_is_named_not_left_out(tmp_path, age, message):
    path = tmp_path / "data.csv"
    path.write_text("arm,mrs_90d,age\n" + "".join(f"{ARMS[i % 2]},{i % 7},{a}\n" for i, a in enumerate(age * 5)))
    result = runner.invoke(app, ["analyze", "ordinal", str(path), "--treatment", "albumin", "--control", "control",
                                 "--adjust", "age"])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()) and "Traceback" not in result.output


def test_a_covariate_that_is_a_sum_of_the_others_is_named_in_the_adjusted_binary_analysis():
    from stroketrial.analysis import binary

    data = pd.DataFrame({"arm": [ARMS[i % 2] for i in range(40)], "good": [i % 3 == 0 for i in range(40)],
                         "age": [50 + i for i in range(40)], "nihss": [i % 9 for i in range(40)]})
    data["age_months"] = 12 * data["age"]
    with pytest.raises(AnalysisInputError, match="covariate 'age_months' is the same for every patient, or a "
                                                 "combination of the arm and the covariates before it"):
        binary.binary(data.astype({"good": float}), "good", "arm", *ARMS, ["age", "nihss", "age_months"])


def test_a_dataframe_column_with_gaps_is_read_without_writing_into_pandas():
    """pandas' copy-on-write hands out read-only arrays: the cells are copied before the gaps are marked."""
    frame = pd.DataFrame({"arm": pd.Series(["albumin", "control", None, "albumin"], dtype=object),
                          "mrs_90d": [1, 2, 3, None], "sex": pd.Series(["f", None, "m", "m"], dtype=object)})
    c = contrast(frame, "mrs_90d", "arm", *ARMS, ["sex"], kind="mrs")
    assert c.n == 1 and c.dropped == 2 and c.covariate_names == ("sex_m",)
    assert frame["sex"].isna().sum() == 1  # the frame is as it was
