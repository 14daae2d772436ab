"""The installed ``pcfilter`` console script (refusals of a command's options, which need no process of
their own, through ``cli.main`` in this process, as the script calls it)."""

import json
import subprocess
import sys
from pathlib import Path

from pcfilter_lib import __version__
from pcfilter_lib.cli import main

PCFILTER = Path(sys.executable).with_name("pcfilter")


def run(*args):
    return subprocess.run([str(PCFILTER), *args], capture_output=True, text=True, timeout=120)


def test_version():
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"pcfilter {__version__}"


def test_help_lists_the_commands():
    result = run("--help")
    assert result.returncode == 0
    assert "usage: pcfilter" in result.stdout
    assert "info" in result.stdout and "PCFILTER_FAST" in result.stdout


def test_no_command_prints_usage_and_fails():
    result = run()
    assert result.returncode == 2
    assert "usage: pcfilter" in result.stderr


def test_unknown_command_fails_with_a_reason():
    result = run("frobnicate")
    assert result.returncode == 2
    assert "invalid choice: 'frobnicate'" in result.stderr


def test_info_reports_versions_and_settings(tmp_path):
    result = subprocess.run([str(PCFILTER), "info", "--json"], capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "PCFILTER_FAST": "1", "PCFILTER_DATA": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["pcfilter"] == __version__
    assert report["fast_mode"] == "True"
    assert report["data_dir"] == str(tmp_path)
    assert report["keras"].startswith("3.")
    assert isinstance(report["gpus"], list)
    assert result.stderr == ""  # TensorFlow's start-up notes are kept out of the way


def test_info_refuses_a_bad_setting():
    result = subprocess.run([str(PCFILTER), "info", "--no-devices"], capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "PCFILTER_FAST": "sometimes"})
    assert result.returncode == 1
    assert result.stderr.strip().startswith("pcfilter info: PCFILTER_FAST='sometimes' is not understood")


def test_bench_adds_rows_to_the_results_file(tmp_path, capsys, monkeypatch):
    # In this process (the workloads run in processes of their own either way): its TensorFlow, which
    # bench starts for the device report, is most often started already by another test of the worker.
    monkeypatch.setenv("PCFILTER_FAST", "1")
    out = tmp_path / "results.json"
    out.write_text(json.dumps([{"model": "unet", "backend": "tensorflow", "from": "another machine"}]))
    status = main(["bench", "--backends", "tensorflow", "torch", "--models", "unet", "--json", "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err[-2000:]
    rows = json.loads(captured.out)
    assert [r["backend"] for r in rows] == ["tensorflow", "torch"]
    assert rows[0]["train_s"] > 0 and rows[0]["device"]["cores"] >= 1
    assert "not installed" in rows[1].get("skipped", "") or rows[1]["train_s"] > 0
    stored = json.loads(out.read_text())
    assert len(stored) == 3 and stored[0]["from"] == "another machine"


def test_simulate_mixes_scene_families_with_scanners_drawn_per_scan(tmp_path, capsys):
    out = tmp_path / "mixed"
    result = run("simulate", "--out", str(out), "--n", "3", "--size", "64x48", "--split", "1/0/0",
                 "--families", "board=1,fruit=1", "--random-scanner")
    assert result.returncode == 0, result.stderr
    assert "board, fruit" in result.stdout and "decoding" in result.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["parameters"]["families"] == {"board": 1.0, "fruit": 1.0}
    assert manifest["parameters"]["randomise"] is True
    assert main(["simulate", "--out", str(tmp_path / "bad"), "--n", "2", "--families", "moon=1"]) == 1
    assert "scene families" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    assert main(["simulate", "--out", str(tmp_path / "bad"), "--n", "2", "--families", "bin=x"]) == 1
    assert "--families must be" in capsys.readouterr().err


def test_a_commands_options_are_forwarded_to_its_workers_as_parsed():
    """What a folder's worker processes get (``cli.options.option_line``) parses back to the same values."""
    from pcfilter_lib.cli.app import build_parser
    from pcfilter_lib.cli.folders import PER_FILE
    from pcfilter_lib.cli.options import option_line

    parser = build_parser()
    for argv in (["filter", "in", "-o", "out", "--jobs", "2", "--method", "sor", "--allow-empty", "--tile-points",
                  "5000"],
                 ["filter", "in", "-o", "out", "--model", "m.keras", "--threshold", "0.35", "--quiet"],
                 ["reconstruct", "in", "-o", "out", "--upsample", "4", "--depth", "7", "--model=-m.keras"],
                 ["simulate", "--out", "x", "--n", "3", "--size=-3x4", "--mesh", "a.stl", "--mesh", "b.stl"],
                 ["bench", "--backends", "jax", "torch", "--json"]):
        args = parser.parse_args(argv)
        line = option_line(args, parser.commands[args.command], leave_out=PER_FILE)
        per_file = ["in", "-o", "out"] if args.command in ("filter", "reconstruct") else []
        again = parser.parse_args([args.command, *per_file, *line])
        assert {k: v for k, v in vars(again).items() if k not in PER_FILE} == \
            {k: v for k, v in vars(args).items() if k not in PER_FILE}, argv
    args = parser.parse_args(["filter", "in", "-o", "out", "--method", "sor", "--jobs", "3"])
    assert option_line(args, parser.commands["filter"], leave_out=PER_FILE) == ["--method=sor"]
