"""`graphc profile --config` (s55, f6): train's --config takes a built-in config's name, no
file, so profile takes the same names (from the same table) and its help says what it
takes; a file's name is refused in one line."""
import pytest

from graphc.cli import build_parser, main
from graphc.models.gpt import CONFIGS


def _config_action(command):
    parser = build_parser().commands[command]
    return next(a for a in parser._actions if "--config" in a.option_strings)


def test_profile_takes_the_config_names_train_takes_and_says_so():
    action = _config_action("profile")
    assert tuple(action.choices) == tuple(CONFIGS)
    assert action.default == _config_action("train").default == "small"
    assert ("one of the built-in configs that graphc train --config names (tiny, small, "
            "medium, nanogpt-cpu)") in action.help
    assert "no config file" in action.help and "--n-layer" in action.help


def test_a_config_file_is_refused_in_one_line(tmp_path, capsys):
    path = tmp_path / "my.json"
    path.write_text("{}")
    with pytest.raises(SystemExit) as stop:
        main(["profile", "--config", str(path)])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        f"graphc: error: argument --config: invalid choice: '{path}' (choose from ")
