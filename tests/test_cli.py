"""The command line: tables for people, --json for machines, exit 2 and one line for bad input."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from stroketrial.cli import app

from .trials import amass2

runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(args))


@pytest.fixture
def patient_file(tmp_path):
    path = tmp_path / "patient.json"
    path.write_text(json.dumps(amass2.ELIGIBLE))
    return path


def test_trials_lists_the_five_builtins_as_json():
    result = run("trials", "--json")
    assert result.exit_code == 0
    assert [t["id"] for t in json.loads(result.stdout)] == ["amass-1", "amass-2", "impact-lvo", "isis-hermes",
                                                           "angel-rescue"]


def test_trial_show_prints_wording_and_rules(monkeypatch):
    from stroketrial.cli import support

    monkeypatch.setattr(support.out.console, "width", 300)  # a wide terminal, so table cells do not wrap
    result = run("trial", "show", "impact-lvo")
    assert result.exit_code == 0
    assert "Puncture to recanalization was more than 90 minutes" in result.stdout
    assert "puncture_to_recanalization_min > 90 min" in result.stdout


def test_trial_show_json_is_the_protocol():
    data = json.loads(run("trial", "show", "amass-2", "--json").stdout)
    assert data["registry_id"] == "NCT07365475" and data["inclusion"][2]["rule"]["value"] == 6


def test_screen_one_patient_exits_0_whatever_the_status(patient_file, tmp_path):
    result = run("screen", "amass-2", str(patient_file), "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["status"] == "eligible"
    ineligible = tmp_path / "no.json"
    ineligible.write_text(json.dumps({**amass2.ELIGIBLE, "nihss": 4}))
    result = run("screen", "amass-2", str(ineligible))
    assert result.exit_code == 0 and "INELIGIBLE" in result.stdout and "NIHSS 4 is below 6" in result.stdout


def test_screen_a_list_of_patients(tmp_path):
    path = tmp_path / "two.json"
    path.write_text(json.dumps([amass2.ELIGIBLE, {"nihss": 2}]))
    statuses = [r["status"] for r in json.loads(run("screen", "amass-2", str(path), "--json").stdout)]
    assert statuses == ["eligible", "ineligible"]


def test_cohort_synth_then_funnel(tmp_path):
    cohort = tmp_path / "c.csv"
    synth = run("cohort", "synth", "--n", "800", "--seed", "4", "--trial", "amass-2", "--out", str(cohort))
    assert synth.exit_code == 0
    result = run("screen", "amass-2", str(cohort), "--funnel", "--json")
    assert result.exit_code == 0
    f = json.loads(result.stdout)
    assert f["assessed"] == 800 and f["eligible"] + f["excluded"] + f["incomplete"] + f["awaiting_attestation"] == 800
    table = run("screen", "amass-2", str(cohort), "--funnel").stdout
    assert "Assessed for eligibility: 800" in table and "Eligible:" in table
    per_patient = json.loads(run("screen", "amass-2", str(cohort), "--json").stdout)
    assert len(per_patient) == 800 and per_patient[0]["patient_id"] == "P0000001"


@pytest.mark.parametrize("content, message", [
    ('{"nihss": 5', "not valid JSON: Expecting ',' delimiter (line 1, column 12)"),
    ('{"nihss": 45}', "nihss: 45 is out of range; NIHSS is a whole number from 0 to 42"),
    ('{"nihss": "7"}', "nihss: '7' is not a number"),
    ('{"creatinine_umol_l": {"value": 2, "unit": "g/L"}}', "unit 'g/L' is not allowed for serum creatinine"),
    ('{"nihs": 7}', "unknown field 'nihs'; did you mean 'nihss'?"),
    ('[1, 2]', "a list must hold patient records"),
])
def test_bad_patient_file_exits_2_with_one_line(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = run("screen", "amass-2", str(path))
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


@pytest.mark.parametrize("args, message", [
    (("screen", "amass-9", "x.json"), "unknown trial 'amass-9'"),
    (("screen", "amass-2", "absent.json"), "absent.json: no such file"),
    (("screen", "amass-2", "absent.csv", "--funnel"), "absent.csv: no such file"),
    (("cohort", "synth", "--out", "cohort.txt"), "--out must end in .csv or .parquet"),
    (("trial", "show", "nope"), "unknown trial 'nope'"),
])
def test_bad_arguments_exit_2(args, message):
    result = run(*args)
    assert result.exit_code == 2 and message in result.stderr


def test_bad_cohort_values_exit_2_naming_the_row(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("patient_id,nihss,aspects\nA,12,8\nB,50,8\n")
    result = run("screen", "amass-2", str(path), "--funnel")
    assert result.exit_code == 2
    assert "row 2 (patient_id B): nihss: 50 is out of range" in result.stderr


def test_invalid_protocol_file_exits_2_with_file_and_path(tmp_path):
    path = tmp_path / "trial.yaml"
    path.write_text("id: t\ninclusion: [{id: a, text: t, rule: {field: nihss, op: '>=', value: 99}}]\n")
    result = run("trial", "validate", str(path))
    assert result.exit_code == 2
    assert f"{path}: inclusion[0].rule: threshold 99 is outside the allowed range" in result.stderr


def test_dictionary_documents_every_field():
    rows = json.loads(run("dictionary", "--json").stdout)
    names = {r["name"] for r in rows}
    assert {"age", "sex", "weight_kg", "nihss", "aspects", "pc_aspects", "prestroke_mrs", "occlusion_site", "etici",
            "thrombectomy_passes", "last_known_well", "arterial_puncture", "recanalization", "sbp", "dbp",
            "glucose_mmol_l", "creatinine_umol_l", "hematocrit_pct", "platelets_10e9_l", "inr", "aptt_s",
            "egfr"} <= names
    assert all(r["description"] for r in rows)


@pytest.mark.parametrize("command", [["--help"], ["screen", "--help"], ["trials", "--help"],
                                     ["trial", "show", "--help"], ["cohort", "synth", "--help"],
                                     ["dictionary", "--help"]])
def test_every_command_has_help_with_an_example(command):
    result = run(*command)
    assert result.exit_code == 0
    assert command == ["--help"] or "Example" in result.stdout


def test_the_installed_entry_point_runs(patient_file):
    result = subprocess.run([sys.executable, "-m", "stroketrial.cli", "screen", "amass-2", str(patient_file)],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "ELIGIBLE" in result.stdout


def test_a_command_without_its_extra_names_the_extra_to_install(monkeypatch):
    """On the core install (no server extra) `stroketrial serve` meets no SQLAlchemy: one line, exit 2."""
    import builtins

    real_import = builtins.__import__

    def without_sqlalchemy(name, globals=None, locals=None, fromlist=(), level=0):
        # SQLAlchemy is loaded already in this process: refuse the store (which imports it) as if it were not
        if name.split(".")[0] == "sqlalchemy" or (level and name.split(".")[0] == "store"):
            raise ModuleNotFoundError("No module named 'sqlalchemy'", name="sqlalchemy")
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", without_sqlalchemy)
    result = run("audit", "verify", "--db", "sqlite:////tmp/no-such-dir/x.db")
    assert result.exit_code == 2
    assert "needs the server extra: pip install 'stroketrial[server]'" in result.output


def _every_command() -> list[list[str]]:
    import typer.main

    def walk(command, path):
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                yield from walk(sub, [*path, name])
        else:
            yield path

    return list(walk(typer.main.get_command(app), []))


# Commands whose output is itself the machine-readable form, or a server / a file, not a report.
NO_JSON = {("serve",), ("trial", "schema")}


@pytest.mark.parametrize("command", _every_command(), ids=" ".join)
def test_every_command_has_help_with_an_example_and_json(command):
    result = run(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Example" in result.stdout, f"{' '.join(command)} --help shows no example"
    assert tuple(command) in NO_JSON or "--json" in result.stdout, f"{' '.join(command)} has no --json"


def test_bad_input_exits_2_but_a_bug_keeps_its_traceback(monkeypatch, patient_file):
    """A ValueError that is not the user's input is a bug: it is not dressed up as exit 2."""
    import stroketrial.eligibility as eligibility
    from stroketrial import InputError

    def broken(protocol, record):
        raise ValueError("internal: this is a bug")

    monkeypatch.setattr(eligibility, "screen", broken)
    result = run("screen", "amass-2", str(patient_file))
    assert result.exit_code == 1 and isinstance(result.exception, ValueError)

    def refused(protocol, record):
        raise InputError("nihss 43 is outside 0-42")

    monkeypatch.setattr(eligibility, "screen", refused)
    result = run("screen", "amass-2", str(patient_file))
    assert result.exit_code == 2 and "nihss 43 is outside 0-42" in result.output


def test_help_loads_neither_the_numerics_nor_the_database():
    """`stroketrial --help` and the command tree load no pandas, NumPy, SciPy or SQLAlchemy (start-up time)."""
    code = ("import sys; from stroketrial.cli import app; import typer.main; typer.main.get_command(app); "
            "print(sorted(m for m in ('pandas', 'numpy', 'scipy', 'sqlalchemy', 'matplotlib', 'pydantic') "
            "if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_each_command_is_built_from_the_module_that_registers_it():
    """`main` builds only the asked command's module (cli/root.py): the map must name every command, once."""
    import typer.main

    from stroketrial.cli import root

    everything = typer.main.get_command(root.app)
    assert sorted(everything.commands) == sorted(root.MODULE_OF)
    for module, names in root.MODULES.items():
        assert sorted(typer.main.get_command(root.build([module])).commands) == sorted(names)


def test_a_command_loads_only_its_own_module(tmp_path):
    code = ("import sys; from stroketrial.cli import main; sys.argv = ['stroketrial', 'trials', '--json']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('stroketrial.cli.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "['stroketrial.cli.root', 'stroketrial.cli.support', " \
                                                   "'stroketrial.cli.trials']"
