"""recipes/evaluate.py's command line: the evaluation protocol's options are EvalConfig's fields under the
flags recipes/condense.py gives them (one generator, engine/cli.py), and the recipe's older spellings
still work for a release, each saying it is deprecated and naming its replacement."""

from __future__ import annotations

import argparse
import dataclasses
import typing

import pytest

import recipes.condense as condense
import recipes.evaluate as evaluate
from hf_lodc.engine.cli import _split
from hf_lodc.engine.config import EvalConfig


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """flag -> action of every option a user is shown (deprecated spellings are hidden from --help)."""
    return {flag: a for a in parser._actions if a.help != argparse.SUPPRESS for flag in a.option_strings}


def _sample(action: argparse.Action, field: dataclasses.Field) -> list[str]:
    """Command-line text that sets ``field`` through ``action`` (nothing for a flag)."""
    if action.nargs == 0:
        return []
    if action.choices:
        return [list(action.choices)[-1]]
    base, _ = _split(typing.get_type_hints(EvalConfig)[field.name])
    if base in (int, float):
        return [str(base(3) if base is int else 0.5)]
    default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
    if isinstance(default, list):
        return [",".join(default)]
    return [str(default) if default is not None else "bf16"]  # the one str option without a default: precision


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def test_shared_eval_options_have_condense_flags_help_and_parsing():
    cond, ev = _options(condense.build_parser()), _options(evaluate.build_parser())
    shared = [f for f in dataclasses.fields(EvalConfig) if _flag(f.name) in ev]
    # every protocol field the recipe does not leave to the foreign-set options or the curve is there
    assert {f.name for f in shared} >= {f.name for f in dataclasses.fields(EvalConfig)} - set(evaluate.EVAL_SKIP)
    assert len(shared) >= 8
    for f in shared:
        flag = _flag(f.name)
        a, b = cond[flag], ev[flag]
        assert (a.dest, a.option_strings, type(a)) == (b.dest, b.option_strings, type(b)) == (
            f.name, b.option_strings, type(b)), flag
        argv = [flag, *_sample(b, f)]
        got_c = vars(condense.build_parser().parse_args(argv))[f.name]
        got_e = vars(evaluate.build_parser().parse_args(["src", *argv]))[f.name]
        assert got_c == got_e, flag
        if f.name not in evaluate.EVAL_SKIP:  # generated from the field in both: one help text
            assert a.help == b.help and a.help, flag


def test_evaluate_keeps_eval_mixed_precision_apart_from_condensation_precision():
    ev = _options(evaluate.build_parser())
    assert ev["--eval-mixed-precision"].dest == "eval_mixed_precision"
    assert "--mixed-precision" not in ev  # condense.py's condensation precision has no meaning here
    assert _options(condense.build_parser())["--mixed-precision"].dest == "mixed_precision"


@pytest.mark.parametrize("old,new", sorted(evaluate.OLD_SPELLINGS.items()))
def test_old_spelling_still_works_and_says_it_is_deprecated(old, new, capsys):
    p = evaluate.build_parser()
    action = p._option_string_actions[new]
    field = {f.name: f for f in dataclasses.fields(EvalConfig)}[action.dest]
    value = _sample(p._option_string_actions[old], field)
    with_old = p.parse_args(["src", old, *value])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and old in err[0] and "deprecated" in err[0] and new in err[0], err
    with_new = evaluate.build_parser().parse_args(["src", new, *value])
    assert capsys.readouterr().err == ""
    assert getattr(with_old, action.dest) == getattr(with_new, action.dest) is not None
    assert evaluate.protocol_given(with_old) == evaluate.protocol_given(with_new)


def test_old_mixed_precision_no_still_leaves_the_precision_unset(capsys):
    args = evaluate.build_parser().parse_args(["src", "--mixed-precision", "no"])
    assert evaluate.protocol_given(args) == {}  # as before: "no" was the option's default
    err = capsys.readouterr().err
    assert "--eval-mixed-precision" in err and err.count("\n") == 1
    with pytest.raises(SystemExit):  # the values the old option refused, it still refuses
        evaluate.build_parser().parse_args(["src", "--mixed-precision", "fp16"])


def test_bad_protocol_values_fail_before_the_set_is_read(tmp_path, capsys):
    src = str(tmp_path / "no-such-set")
    for argv in (["--eval-runs", "-1"], ["--eval-mixed-precision", "fp16"], ["--eval-batch", "0"]):
        assert evaluate.main([str(tmp_path), *argv]) == 2, argv
        err = capsys.readouterr().err
        assert argv[0][2:].replace("-", "_") in err and err.count("error") == 1, err
    with pytest.raises(SystemExit) as e:  # argparse's own error for text that is not a number
        evaluate.main([src, "--eval-runs", "ten"])
    assert e.value.code == 2 and "invalid int value" in capsys.readouterr().err


def test_the_docs_show_evaluate_commands_that_parse_with_the_current_flags(capsys):
    """Every ``python recipes/evaluate.py ...`` line of docs/ parses, without a deprecated spelling."""
    import shlex
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    commands = []
    for page in sorted((root / "docs").glob("*.md")):
        lines = page.read_text().splitlines()
        for i, line in enumerate(lines):
            if not line.startswith("python recipes/evaluate.py "):
                continue
            text = line
            while text.rstrip().endswith("\\"):  # a command continued on the next line
                i += 1
                text = text.rstrip()[:-1] + " " + lines[i]
            commands.append((page.name, shlex.split(text.split("  #")[0])[2:]))
    assert len(commands) >= 5
    for page, argv in commands:
        evaluate.build_parser().parse_args(argv)
        assert capsys.readouterr().err == "", (page, argv)
