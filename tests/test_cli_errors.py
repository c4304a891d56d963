"""Every CLI command answers bad input with exit status 2 and one line naming the fix."""

import argparse

import pytest

from napari_dynfit.cli import build_parser, main

#: commands without an input file: checked with a bad numeric value instead
NO_INPUT = {"demo", "bench", "simulate", "well-example", "closure simulate"}


def _subcommands():
    """Every command by its words (``"closure train"`` for nested ones) -> its parser."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out = {}
    for name, sp in sub.choices.items():
        nested = [a for a in sp._actions if isinstance(a, argparse._SubParsersAction)]
        if nested and name not in NO_INPUT:
            out.update({f"{name} {inner}": isp for inner, isp in nested[0].choices.items()})
        else:
            out[name] = sp
    return out


def _argv_missing_input(name, sp, tmp_path):
    argv = name.split()
    for action in sp._actions:
        if action.option_strings:
            if action.required:
                if action.type in (int, float):
                    value = "1"
                elif action.choices:
                    value = str(next(iter(action.choices)))
                else:
                    suffix = (getattr(action.type, "suffixes", None) or (".dat",))[0]
                    value = str(tmp_path / f"out{len(argv)}{suffix}")
                argv += [action.option_strings[0]] + [value] * (1 if action.nargs in (None, "?") else 2)
        elif action.nargs not in (argparse.PARSER,) and action.dest != "help":
            argv.append(str(tmp_path / f"missing_{action.dest}.csv"))
    return argv


@pytest.mark.parametrize("name", sorted(set(_subcommands()) - NO_INPUT))
def test_missing_input_file_one_line_error(name, tmp_path, capsys):
    sp = _subcommands()[name]
    argv = _argv_missing_input(name, sp, tmp_path)
    code = main(["-q", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, argv
    assert len(err) == 1 and "error" in err[0], err
    assert "does not exist" in err[0] or "missing" in err[0] or "not found" in err[0], err[0]
    assert not any(p.name.startswith(("out", ".out")) for p in tmp_path.iterdir()), "nothing may be written on error"


@pytest.mark.parametrize("name", sorted(set(_subcommands()) - NO_INPUT))
def test_corrupt_input_file_one_line_error(name, tmp_path, capsys):
    sp = _subcommands()[name]
    argv = _argv_missing_input(name, sp, tmp_path)
    for i, a in enumerate(argv):  # make every input exist, with garbage content
        if "missing_" in a:
            p = tmp_path / a.split("/")[-1]
            p.write_bytes(b"\x00garbage\xff not a valid file")
    code = main(["-q", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, argv
    assert len(err) == 1 and "error" in err[0], err
    assert "must end in" not in err[0], err  # the input is what is wrong here, not the output name
    assert not any(p.name.startswith(("out", ".out")) for p in tmp_path.iterdir()), "nothing may be written on error"


@pytest.mark.parametrize("bad", [["--n-particles", "-5"], ["--shape", "-64", "64"], ["--frames", "0"]])
def test_simulate_negative_size_one_line_error(bad, tmp_path, capsys):
    code = main(["-q", "simulate", "abp", *bad, "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "error" in err[0], err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", [n for n in _subcommands() if " " in n])
def test_nested_command_errors_name_the_full_command(name, tmp_path, capsys):
    """A usage error of ``dynfit closure train`` said ``dynfit closure:``, and an unknown option said ``dynfit:``;
    both name the full command and its help."""
    sp = _subcommands()[name]
    argv = _argv_missing_input(name, sp, tmp_path)
    for bad in ([*argv, "--no-such-option"], [*name.split(), "--no-such-option"]):  # unknown option, missing input
        assert main(["-q", *bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"dynfit {name}: error:"), err
        assert err[0].endswith(f"(see 'dynfit {name} --help')"), err
    assert main(["-q", "msd", "t.csv", "--no-such-option"]) == 2  # a top-level command: its own name too
    assert capsys.readouterr().err.startswith("dynfit msd: error: unrecognized arguments: --no-such-option")
