"""The one confirmation gate: strict parameters, one action per confirmation, typed by hand."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from powrops import gate
from powrops.errors import ParameterError, ReportError


@pytest.mark.parametrize("value", [False, "false", "False", "no", "0", "off", "", None, 0])
def test_false_and_its_spellings_are_false(value: object) -> None:
    assert gate.parse_confirm(value) is False


@pytest.mark.parametrize("value", [True, "true", "TRUE", "yes", "1", "on", 1])
def test_true_and_its_spellings_are_true(value: object) -> None:
    assert gate.parse_confirm(value) is True


@pytest.mark.parametrize("value", ["maybe", "ture", 2, 1.0, ["true"], "yes please"])
def test_anything_unclear_is_an_error_naming_the_parameter(value: object) -> None:
    with pytest.raises(ParameterError, match=r"confirm_erase = .*expected True or False"):
        gate.parse_confirm(value, "confirm_erase")


def test_under_papermill_the_parameter_decides(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv(gate.RUN_DIR_ENV, str(tmp_path))
    assert gate.confirm("restore", "false", target="powr") is False  # was a truthy "yes"
    assert "Not confirmed: restore was not run" in capsys.readouterr().out
    assert gate.confirm("restore", "true", target="powr") is True
    [kept] = gate.decisions(tmp_path)  # the same action decided again replaces the first
    assert kept["how"] == "parameter" and kept["confirmed"] is True and not kept["refused"]


def test_a_wrong_name_typed_is_kept_as_refused_and_enter_as_skipped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(gate.RUN_DIR_ENV, raising=False)
    monkeypatch.setenv(gate.WORKING_COPY_ENV, str(tmp_path))
    monkeypatch.setattr(gate, "interactive", lambda: True)
    assert gate.confirm("erase user 7", True, target="powr", ask=lambda _: "pow") is False
    assert gate.confirm("vacuum", True, target="powr", ask=lambda _: "") is False
    assert gate.confirm("analyze", False, target="powr", ask=lambda _: " powr ") is True
    erase, vacuum, analyze = gate.decisions(tmp_path)
    assert erase["refused"] is True and erase["typed"] == "pow" and erase["expected"] == "powr"
    assert vacuum["how"] == "skipped" and vacuum["refused"] is False
    assert analyze["how"] == "typed" and analyze["confirmed"] is True


def test_by_hand_the_database_name_is_typed_and_a_saved_true_is_not_enough(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(gate.RUN_DIR_ENV, raising=False)
    monkeypatch.setattr(gate, "interactive", lambda: True)
    asked: list[str] = []

    def answer(with_text: str) -> Callable[[str], str]:
        def ask(prompt: str) -> str:
            asked.append(prompt)
            return with_text

        return ask

    assert gate.confirm("erase user 7", True, target="powr", ask=answer("")) is False
    assert gate.confirm("erase user 7", True, target="powr", ask=answer("pow")) is False
    assert gate.confirm("erase user 7", False, target="powr", ask=answer("powr")) is True
    assert all("powr" in prompt and "erase user 7" in prompt for prompt in asked)
    out = capsys.readouterr().out
    assert out.count("Not confirmed") == 2 and "Confirmed: erase user 7 on database powr." in out
    assert "typed 'pow', not 'powr'" in out and "confirm is" not in out


def test_a_kernel_that_cannot_ask_falls_back_to_the_parameter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class StdinNotImplementedError(RuntimeError):
        pass

    def cannot(prompt: str) -> str:
        raise StdinNotImplementedError("no stdin")

    monkeypatch.setattr(gate, "interactive", lambda: True)
    assert gate.confirm("vacuum", False, target="powr", ask=cannot) is False
    assert gate.confirm("vacuum", True, target="powr", ask=cannot) is True


def test_the_command_line_gate_takes_yes_or_the_typed_database_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert gate.confirm_at_terminal("roll back 2", "powr", yes=True)
    assert gate.confirm_at_terminal("roll back 2", "powr", yes=False, ask=lambda _: " powr\n")
    assert not gate.confirm_at_terminal("roll back 2", "powr", yes=False, ask=lambda _: "yes")
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(ParameterError, match="pass --yes to roll back 2 without a prompt"):
        gate.confirm_at_terminal("roll back 2", "powr", yes=False)


@dataclass(frozen=True)
class Place:
    """What db.Identity gives the gate: where the action acts."""

    database: str
    host: str
    port: int | None
    server: str
    several_servers: bool


@pytest.mark.parametrize(
    ("several", "answer", "wrong"), [(True, "staging", "powr"), (False, "powr", "staging")]
)
def test_the_prompt_names_the_server_and_several_servers_ask_for_its_name(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    several: bool,
    answer: str,
    wrong: str,
) -> None:
    """With several servers configured a database name cannot tell a primary from staging:
    the server's name is typed; the prompt shows server, host, port and database."""
    place = Place("powr", "db2.example", 5433, "staging", several)
    monkeypatch.setattr(gate, "interactive", lambda: True)
    asked: list[str] = []

    def typing(text: str) -> Callable[[str], str]:
        def ask(prompt: str) -> str:
            asked.append(prompt)
            return text

        return ask

    assert gate.confirm("VACUUM", False, target=place, ask=typing(answer)) is True
    assert gate.confirm("VACUUM", True, target=place, ask=typing(wrong)) is False
    assert gate.confirm_at_terminal("VACUUM", place, yes=False, ask=typing(answer))
    assert not gate.confirm_at_terminal("VACUUM", place, yes=False, ask=typing(wrong))
    for prompt in asked:
        assert "server staging (db2.example:5433, database powr)" in prompt, prompt
        assert f"name, {answer}," in prompt
    out = capsys.readouterr().out
    assert "Confirmed: VACUUM on server staging (db2.example:5433, database powr)." in out
    assert f"Not confirmed: VACUUM was not run (typed {wrong!r}, not {answer!r})" in out


def test_opened_in_jupyterlab_without_evidence_nothing_is_asked_or_done(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A template opened from runbooks/ in JupyterLab (`make lab` opens there) and run
    itself, or a working copy run without its first cell: nothing it does would be archived,
    so its action is refused before anything is asked, naming the notebook and how to open a
    working copy. A working copy whose recorder runs, and papermill (no JupyterLab session),
    ask or decide as before."""
    template = "/srv/powrops/runbooks/gdpr_request.ipynb"
    monkeypatch.delenv(gate.RUN_DIR_ENV, raising=False)
    monkeypatch.delenv(gate.WORKING_COPY_ENV, raising=False)
    monkeypatch.setenv("JPY_SESSION_NAME", template)
    monkeypatch.setattr(gate, "interactive", lambda: True)
    asked: list[str] = []
    with pytest.raises(ReportError) as refused:
        gate.confirm(
            "erase of user 7", False, target="powr", ask=lambda p: asked.append(p) or "powr"
        )
    assert asked == [] and template in str(refused.value)
    assert "not archived" in str(refused.value) and "powrops runbook NAME" in str(refused.value)
    monkeypatch.setenv(gate.WORKING_COPY_ENV, str(tmp_path))
    assert gate.confirm("erase of user 7", False, target="powr", ask=lambda p: "powr") is True
    monkeypatch.delenv(gate.WORKING_COPY_ENV)
    monkeypatch.delenv("JPY_SESSION_NAME")
    assert gate.confirm("erase of user 7", True, target="powr", ask=lambda p: "powr") is True
