"""Test of the `imp-tfx smoke` command."""

import json
import math

from imp_tfx import cli


def test_smoke_prints_one_json_line(capsys):
    assert cli.main(["smoke", "--config", "tiny", "--batch-size", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert set(summary) == {"config", "params", "loss", "grad_norm", "seconds"}
    assert summary["config"] == "tiny" and summary["params"] > 200_000
    assert math.isfinite(summary["loss"]) and summary["loss"] > 0
    assert math.isfinite(summary["grad_norm"]) and summary["grad_norm"] > 0
