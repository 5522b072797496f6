"""`graphc train --beta1 --beta2 --grad-clip` (graphc/cli.py, graphc/train.py): TrainConfig's
beta1, beta2 and grad_clip from the command line (nanoGPT's configurator overrides them), in
the help with their defaults, into AdamW's betas and the trainer's clip; bad values are one
line (status 2), and train_gpt's options= checks them likewise."""
import pytest

from graphc import train
from graphc.cli import _options, build_parser, main
from graphc.models.gpt import GPT, GPTConfig
from ir.errors import GraphcError


def parse(*argv):
    return build_parser().parse_args(["train", "--config", "tiny", *argv])


def test_the_options_reach_the_config_and_adamw():
    args = parse("--beta1", "0.8", "--beta2", "0.95", "--grad-clip", "0.5")
    tc = train.train_config(args.config, _options(args))
    assert (tc.beta1, tc.beta2, tc.grad_clip) == (0.8, 0.95, 0.5)
    model = GPT(GPTConfig.named("tiny", vocab_size=5, n_layer=1))
    opt = train.optimizer(model, tc)
    assert (opt.beta1, opt.beta2) == (0.8, 0.95)
    default = train.train_config("tiny", _options(parse()))
    assert (default.beta1, default.beta2, default.grad_clip) == (0.9, 0.99, 1.0)
    assert train.train_config("tiny", _options(parse("--grad-clip", "0"))).grad_clip == 0


def test_help_lists_them_with_their_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for option, default in (("--beta1", "0.9"), ("--beta2", "0.99"), ("--grad-clip", "1.0")):
        assert option in out
        metavar = option.strip("-").upper().replace("-", "_")
        said = out.rsplit(f"{option} {metavar} ", 1)[1]  # (its help, after the usage line)
        assert f"(default: {default})" in said[:160]


@pytest.mark.parametrize("argv, says", [
    (["--beta1", "1"], "argument --beta1: must be in [0, 1), got '1'"),
    (["--beta2", "-0.1"], "argument --beta2: must be in [0, 1), got '-0.1'"),
    (["--beta2", "nan"], "argument --beta2: expected a finite number, got 'nan'"),
    (["--grad-clip", "-1"], "argument --grad-clip: expected a number >= 0, got -1.0"),
    (["--grad-clip", "x"], "argument --grad-clip: expected a number, got 'x'"),
])
def test_bad_values_are_one_line(capsys, argv, says):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--config", "tiny", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"graphc: error: {says}"), err


@pytest.mark.parametrize("key, value, words", [
    ("beta1", 1.0, "a number in [0, 1)"), ("beta2", -0.5, "a number in [0, 1)"),
    ("grad_clip", -1.0, "a finite number >= 0")])
def test_train_gpt_options_check_them(key, value, words):
    with pytest.raises(GraphcError) as info:
        train.check_options({key: value})
    assert str(info.value).splitlines()[0] == f"options[{key!r}] must be {words}, got {value!r}"


# ---- the compile line's count (finding g3#6: "1 fused kernels run as numpy code") ---------------
def test_the_compile_line_says_one_kernel_in_the_singular():
    assert train.compiled_line(6.344, 202, 1) == (
        "compiled the training step in 6.34s (202 nodes; 1 fused kernel runs as numpy code "
        "until numba has compiled it in the background)")
    assert train.compiled_line(2.0, 50, 3) == (
        "compiled the training step in 2.00s (50 nodes; 3 fused kernels run as numpy code "
        "until numba has compiled them in the background)")
    assert train.compiled_line(0.5, 7, 0) == "compiled the training step in 0.50s (7 nodes)"
