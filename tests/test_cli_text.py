"""The command line's help reads as English and ``report run --help`` lists what it can run."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

from cli_helpers import run_cli
from powrops.cli.main import build_parser
from powrops.reports.spec import discover


def _parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, (*path, name))


def _help_texts() -> list[tuple[str, str]]:
    texts = []
    for path, parser in _parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                texts += [(" ".join((*path, c.dest)), str(c.help)) for c in action._choices_actions]
            elif action.help and action.help != argparse.SUPPRESS:
                texts.append((" ".join((*path, *action.option_strings)), action.help))
    return texts


def test_every_option_says_what_it_does() -> None:
    missing = [
        (" ".join(path), action.option_strings)
        for path, parser in _parsers(build_parser())
        for action in parser._actions
        if action.option_strings and not action.help
    ]
    assert missing == []


def test_help_strings_are_proofread() -> None:
    texts = _help_texts()
    assert len(texts) > 50
    wrong_article = re.compile(r"\ba (?:[aeio]\w|un[^i])", re.IGNORECASE)
    for where, text in texts:
        assert not wrong_article.search(text), (where, text)
        assert "`" not in text and "  " not in text, (where, text)
    assert wrong_article.search("take a incremental backup")  # the check can fail


def test_report_run_help_lists_every_report_with_parameters_types_and_defaults() -> None:
    run = run_cli("report", "run", "--help")
    assert run.returncode == 0, run.stderr
    specs = discover()
    assert len(specs) >= 10
    for spec in specs.values():
        assert re.search(rf"^{spec.name}\s+{spec.kind}\s", run.stdout, re.MULTILINE), spec.name
        for p in spec.parameters.values():
            line = rf"^\s+-p {p.name}\s+{p.type_name}\s+default {re.escape(p.default_source)}"
            assert re.search(line, run.stdout, re.MULTILINE), (spec.name, p.name)
    listed = run_cli("report", "list")
    assert listed.returncode == 0 and listed.stdout.strip() in run.stdout
