"""Issue 12, CLI: every bad input exits 2 with one line naming field, value and expectation;
no traceback reaches the user; nothing is created where the user did not ask."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from superlora_tn.cli import main


def files(tmp: Path) -> dict[str, Path]:
    out = {}
    (tmp / "latin1.json").write_bytes(b'{"w": [4, 4], "\xff": 1}')
    out["latin1"] = tmp / "latin1.json"
    (tmp / "good.json").write_text('{"w": [128, 128]}')
    out["good"] = tmp / "good.json"
    (tmp / "hang.json").write_text('{"targets": {"w": [1000000000000000000, 1]}, "order": 4}')
    out["hang"] = tmp / "hang.json"
    (tmp / "deep.json").write_text('{"fold": "balanced", "groups": 1, "order": 1000000000}')
    out["deep"] = tmp / "deep.json"
    (tmp / "config5.json").write_text('{"config": 5}')
    out["config5"] = tmp / "config5.json"
    (tmp / "list.json").write_text("[1, 2]")
    out["list"] = tmp / "list.json"
    for i, header in enumerate(({"w": 5}, {"w": {"dtype": "F32"}}, [1, 2, 3], {"w": {"shape": ["a"]}})):
        raw = json.dumps(header).encode()
        (tmp / f"ck{i}.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw)
        out[f"ck{i}"] = tmp / f"ck{i}.safetensors"
    return out


BAD = [
    ["plan", "--targets-file", "{latin1}"],
    ["plan", "--spec", "{latin1}"],
    ["plan", "--spec", "{config5}"],
    ["plan", "--spec", "{hang}"],  # once a hang: factorising 10**18
    ["plan", "--spec", "{deep}"],  # once a hang: order 10**9
    ["plan", "--spec", "{list}"],
    ["plan", "--checkpoint", "{ck0}"],
    ["plan", "--checkpoint", "{ck1}"],
    ["plan", "--checkpoint", "{ck2}"],
    ["plan", "--checkpoint", "{ck3}"],
    ["plan", "--order", "3000", "--fold", "balanced", "--groups", "1"],
    ["plan", "--splits", "3000"],
    ["plan", "--splits", "-1"],
    ["plan", "--order", "7", "--splits", "4", "--structure", "tucker", "--targets-file", "{good}"],
    ["budget", "--top", "-1", "--budget", "1e4"],
    ["budget", "--top", "0", "--budget", "1e4"],
    ["budget", "--group-counts", "0", "--budget", "1e4"],
    ["budget", "--splits", "-1", "--budget", "1e4"],
    ["budget", "--ratios", "2", "--budget", "1e4"],
    ["budget", "--budget", "10"],
    ["experiment", "digits", "--jobs", "0", "--quick"],
    ["draw", "-o", "{tmp}/missing/dir/x.png"],
    ["draw", "-o", "{tmp}/blocker/x.png"],
]


@pytest.mark.parametrize("argv", BAD, ids=lambda a: " ".join(a)[:60])
def test_bad_input_exits_2_with_one_line(argv, tmp_path, capsys):
    paths = {k: str(v) for k, v in files(tmp_path).items()}
    (tmp_path / "blocker").write_text("a file, not a directory")
    argv = [a.format(tmp=tmp_path, **paths) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and "error" in err
    assert not (tmp_path / "missing").exists()  # draw creates no directories


def test_unexpected_errors_are_one_line_not_a_traceback(monkeypatch, capsys):
    import superlora_tn.cli as cli

    def boom(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "cmd_plan", boom)
    monkeypatch.delenv("SUPERLORA_TN_DEBUG", raising=False)
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: (parser, parser.set_defaults(func=boom))[0])
    assert main(["plan"]) == 1
    err = capsys.readouterr().err
    assert "internal error: ZeroDivisionError" in err and "Traceback" not in err
