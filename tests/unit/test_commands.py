"""The command scaffold every ``radlake`` subcommand is built on (apps/_common.py)."""

from __future__ import annotations

import argparse

import pytest

from apps import cli
from apps._common import UsageError, command
from lake_schemas.errors import RadlakeError
from platform_layer.errors import TopicError


class Refused(RadlakeError):
    pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radlake test")
    parser.add_argument("outcome", choices=["ok", "usage", "refused", "topic", "bug"])
    return parser


def _handler(args: argparse.Namespace, _settings) -> int:
    if args.outcome == "usage":
        raise UsageError("no such file or folder: x")
    if args.outcome == "refused":
        raise Refused("the registry refused")
    if args.outcome == "topic":
        raise TopicError("cannot list topics")
    if args.outcome == "bug":
        raise ZeroDivisionError("not ours")
    print("done")
    return 0


@pytest.fixture
def main(monkeypatch, tmp_path):
    monkeypatch.setenv("RADLAKE_STATE_DIR", str(tmp_path))
    return command("radlake test", _parser, _handler, exit_codes={TopicError: 4})


def test_success_prints_results_on_stdout(main, capsys):
    assert main(["ok"]) == 0
    assert capsys.readouterr().out == "done\n"


@pytest.mark.parametrize(("argv", "code", "message"), [
    (["usage"], 2, "radlake test: no such file or folder: x"),
    (["refused"], 1, "radlake test: the registry refused"),
    (["topic"], 4, "radlake test: cannot list topics"),
])
def test_a_radlake_error_is_one_line_and_an_exit_code(main, capsys, argv, code, message):
    assert main(argv) == code
    assert capsys.readouterr().err.strip().splitlines() == [message]


def test_argparse_usage_errors_and_help_are_exit_codes_not_exceptions(main, capsys):
    assert main([]) == 2
    assert main(["--help"]) == 0
    assert "usage: radlake test" in capsys.readouterr().out


def test_an_unexpected_exception_is_not_swallowed(main):
    with pytest.raises(ZeroDivisionError):
        main(["bug"])


def test_every_subcommand_module_exposes_main_and_answers_help(capsys):
    for name in cli.COMMANDS:
        assert cli.main([name, "--help"]) == 0, name
    assert cli.main(["no-such-command"]) == 2
