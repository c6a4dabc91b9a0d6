"""The one way a command honours ``--format``: ``print_result`` and ``print_rows`` (bastion.cli.options)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest

from bastion.cli.main import main
from bastion.cli.options import print_result, print_rows
from bastion.cli.output import OutputFormat


@dataclass
class Row:
    name: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def test_json_mode_prints_the_document_alone_and_never_renders_the_text_view(
        capsys: pytest.CaptureFixture[str]) -> None:
    rendered: list[str] = []
    print_result(OutputFormat.json, {"ok": True, "n": 3}, lambda: rendered.append("text view"))
    out = capsys.readouterr().out
    assert json.loads(out) == {"ok": True, "n": 3}
    assert rendered == [], "the text view may need fields a JSON run does not have: it is not called"


def test_text_mode_prints_the_line_or_calls_the_view(capsys: pytest.CaptureFixture[str]) -> None:
    print_result(OutputFormat.text, {"n": 3}, "[bold]3[/] rows", highlight=False)
    print_result(OutputFormat.text, {"n": 3}, lambda: print("from the view"))
    assert capsys.readouterr().out.splitlines() == ["3 rows", "from the view"], "text is Rich markup, as before"


def test_rows_are_one_json_list_of_their_dicts_or_a_table_of_their_cells(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [Row("alpha", 1), Row("beta", 22)]
    print_rows(OutputFormat.json, rows, ("name", "size"), lambda r: (r.name, str(r.size)))
    assert json.loads(capsys.readouterr().out) == [{"name": "alpha", "size": 1}, {"name": "beta", "size": 22}]

    print_rows(OutputFormat.json, [{"model": "m", "every_s": 60.0}], ("model",), lambda r: (r["model"],))
    assert json.loads(capsys.readouterr().out) == [{"model": "m", "every_s": 60.0}], "mappings go out as they are"

    print_rows(OutputFormat.text, rows, ("name", "size"), lambda r: (r.name, str(r.size)), title="things")
    text = capsys.readouterr().out
    assert "things" in text
    cells = [line.replace("│", " ").replace("┃", " ").split() for line in text.splitlines()]
    assert ["name", "size"] in cells and ["alpha", "1"] in cells and ["beta", "22"] in cells


def test_list_commands_print_an_empty_json_list_and_an_empty_table(
        bastion_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["principals", "list"], ["data", "list"], ["watch", "list"]):
        with pytest.raises(SystemExit) as exc:
            main([*argv, "--format", "json"])
        assert exc.value.code in (0, None)
        assert json.loads(capsys.readouterr().out) == [], argv
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code in (0, None)
        assert capsys.readouterr().out.strip(), f"{argv}: the table's header is shown even when it is empty"


def test_history_of_an_unknown_model_is_exit_3_in_text_and_an_empty_list_in_json(
        bastion_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["history", "no-such-model"])
    assert exc.value.code == 3 and "no stored assessment of no-such-model" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["history", "no-such-model", "--format", "json"])
    assert exc.value.code in (0, None) and json.loads(capsys.readouterr().out) == []
