"""The `graphc` command: train, sample (and more subcommands as they land).

Every user error ends in one line, `graphc: error: ...`, and a non-zero exit status.
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import re
import sys
import warnings

import numpy as np

from ir import settings
from ir.errors import GraphcError, no_user_code_above

from .checkpoint import CheckpointError
from .data import DataError

CHECKPOINT = "checkpoint.npz"


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line (`graphc: error: argument --lr: ...`, exit 2)
    like every other user error, not the usage block followed by the message."""

    # the ranks of an MPI job this process joined all parse the same command line
    # (`mpiexec -n N graphc train`): its refusal is said once, by rank 0
    every_rank = False

    def parse_args(self, args=None, namespace=None):
        """argparse's, but an option the subcommand does not know (`graphc train --nosuch`)
        is refused by that subcommand, pointing at its help (`see graphc train --help`),
        not at graphc's, which lists no option of it."""
        args = list(sys.argv[1:] if args is None else args)
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = getattr(self, "commands", {}).get(getattr(parsed, "command", None))
            # (one before the subcommand's name, `graphc --nosuch train`, is graphc's own)
            after = args[args.index(parsed.command) + 1:] if command is not None else []
            (command if extras[0] in after else self).error(
                f"unrecognized arguments: {' '.join(extras)}")
        return parsed

    # a value that starts with a dash: a number or a size (-5MB, -1e-3, -inf), which is no
    # option of graphc's (none is a dash and a digit, a dot, `inf` or `nan`)
    _NEGATIVE_VALUE = re.compile(r"-(?:[0-9.]|inf|nan)", re.IGNORECASE)

    def _parse_optional(self, arg_string):
        """argparse's, but an argument that looks like a negative number or size and is
        no option is a value: argparse takes only `-5` and `-.5` so, and `--memory-limit
        -5MB` or `--lr -1e-3` got `expected one argument` in place of the option's own
        refusal (`expected a positive number`). Every option parses its value the same way,
        so it is decided here, once, for all of them."""
        found = super()._parse_optional(arg_string)
        # no option of this parser: (None, arg, ...), or [(None, arg, ...)] from Python 3.12.7
        # and 3.13.1 on, whose argparse gives a list of the options an argument may be
        unknown = found is not None and (found[0][0] if isinstance(found, list) else
                                         found[0]) is None
        if unknown and self._NEGATIVE_VALUE.match(arg_string):
            return None  # (argparse's form of "a positional value")
        return found

    def error(self, message):
        line = f"graphc: error: {message} (see {self.prog} --help)"
        if self.every_rank:
            from .distributed import leave_together
            leave_together(2, line)
        self.exit(2, line + "\n")


def _whole(text, bounded=True):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {_shown(text)}") from None
    if bounded and abs(value) > 2 ** 62:  # (a count or a size: past it, float conversions
        # and int64 counters overflow deep inside, and no run would end)
        raise argparse.ArgumentTypeError(f"expected a whole number up to 2**62, got "
                                         f"{_shown(text)}")
    return value


def _seed(text):
    """A seed: any whole number >= 0 (numpy's generators take them all; a seed past int64
    trains, tests/test_review_s19e.py)."""
    return _non_negative_int(text, bounded=False)


def _shown(text) -> str:
    """An option's text for a message, cut short (5000 digits echoed whole)."""
    return repr(text) if len(text) <= 40 else repr(text[:40]) + f"... ({len(text)} characters)"


def _number(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not np.isfinite(value):  # inf or nan would train (or sample) on garbage
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _non_negative_int(text, bounded=True):
    value = _whole(text, bounded)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def _non_negative_float(text):
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def _positive_int(text):
    value = _whole(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def _pipeline(none_option, stages=()):
    """A pipeline's name or comma-separated passes. An empty one is refused here, where it
    would quietly run no pass (`none_option` says that), and so is an unknown name, with the
    option it came from (`stages`: lowering stages the option also takes, dump's `fuse`)."""
    def parse(text):
        from passes.manager import pipeline_passes
        if not text.replace(",", "").strip():
            raise argparse.ArgumentTypeError(f"{text!r} names no pass; for none, give "
                                             f"{none_option}")
        passes = [n for n in text.split(",") if n.strip() not in stages]
        if not "".join(passes).strip():
            return text  # only stages: dump checks where they stand
        try:
            pipeline_passes(",".join(passes))
        except GraphcError as exc:
            raise argparse.ArgumentTypeError(exc.message) from None
        return text
    return parse


def _probability(text):
    value = _number(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text!r}")
    return value


def _unit_interval(text):
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text!r}")
    return value


def _beta(text):
    value = _number(text)
    if not 0 <= value < 1:  # (1 never forgets: Adam's bias correction divides by zero)
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text!r}")
    return value


def _positive_float(text):
    value = _number(text)
    if not value > 0:
        underflow = value == 0 and any(c in "123456789" for c in text.split("e")[0])
        shown = f"{text} (0.0 as a float: too small)" if underflow else value  # 1e-400
        raise argparse.ArgumentTypeError(f"expected a positive number, got {shown}")
    return value


def _path(text):
    """A file or directory name. An empty one (`--data "$TEXT"` with TEXT unset) is refused:
    taken for an option not given, it trained on the bundled text or wrote into runs/."""
    if not text:
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return text


def _memory_size(text):
    from passes.rematerialize import parse_memory_limit
    try:
        return parse_memory_limit(text, "size")
    except GraphcError as exc:
        raise argparse.ArgumentTypeError(exc.message.removeprefix("size: ")) from None


def _default(defaults: dict, field: str, fallback) -> str:
    """The help's `(default: ...)` of a setting that --config sets: `the config's: tiny 2,
    small 4, ...` (`defaults`: config name -> its settings), or the one value every config
    shares (`fallback` where it sets none)."""
    values = {name: settings.get(field, fallback) for name, settings in defaults.items()}
    if len(set(values.values())) == 1:
        return f"(default: {fallback})"
    return "(default: the config's: " + ", ".join(
        f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}"
        for name, value in values.items()) + ")"


def _add_model_options(p):
    from .models.gpt import CONFIGS, GPTConfig
    p.add_argument("--config", default="small", help=f"model size: {', '.join(CONFIGS)}; it "
                   "sets the defaults below marked `the config's` (default: small; a resumed "
                   "run takes its checkpoint's)")
    what = {"n_layer": "transformer blocks", "n_head": "attention heads per block",
            "n_embd": "embedding width, a multiple of --n-head",
            "block_size": "context length, in characters",
            "batch_size": "sequences per step, over all --ranks"}
    for field, says in what.items():
        p.add_argument("--" + field.replace("_", "-"), dest=field, type=_positive_int,
                       help=f"{says} {_default(CONFIGS, field, getattr(GPTConfig, field))}")
    p.add_argument("--dropout", type=_non_negative_float, help="dropout probability, below 1 "
                   f"(default: {GPTConfig.dropout})")
    p.add_argument("--no-bias", dest="bias", action="store_const", const=False,
                   help="no biases in the linear layers and layer norms (default: biases, "
                   "but for nanogpt-cpu)")
    p.add_argument("--untied", dest="tie_weights", action="store_const", const=False,
                   help="separate lm_head weights instead of tying them to the embedding "
                   "(default: tied)")
    p.add_argument("--dtype", choices=["float32", "float64"],
                   help=f"the model's dtype, of its parameters and computation (default: "
                   f"{GPTConfig.dtype})")


def build_parser():
    parser = _Parser(prog="graphc", description="graphc: a graph compiler for "
                                     "neural networks, on numpy")
    sub = parser.add_subparsers(dest="command", required=True)
    parser.commands = sub.choices  # each subcommand's parser, by name

    t = sub.add_parser("train", help="train a character-level GPT (default: small on Tiny "
                       "Shakespeare)")
    from .train import TRAIN_DEFAULTS, TrainConfig

    def default(field):
        return _default(TRAIN_DEFAULTS, field, getattr(TrainConfig, field))

    _add_model_options(t)
    t.add_argument("--data", type=_path, help="UTF-8 text file (default: the bundled Tiny "
                   "Shakespeare)")
    t.add_argument("--steps", type=_positive_int, help="train until this many steps in all "
                   + default("steps"))
    t.add_argument("--lr", type=_positive_float, help="peak learning rate " + default("lr"))
    t.add_argument("--min-lr", type=_non_negative_float,
                   help="learning rate at the end of the cosine schedule (0: decay to zero) "
                   + default("min_lr"))
    t.add_argument("--warmup", type=_non_negative_int, help="steps of linear learning-rate "
                   "warmup " + default("warmup"))
    t.add_argument("--decay-steps", type=_positive_int,
                   help="the step the cosine schedule ends at, warmup included; more than "
                   "--warmup (default: --steps)")
    t.add_argument("--weight-decay", type=_non_negative_float,
                   help="AdamW's weight decay, of the weight matrices and embeddings "
                   + default("weight_decay"))
    t.add_argument("--beta1", type=_beta, help="AdamW's beta1, the decay of its gradient "
                   "average, in [0, 1) " + default("beta1"))
    t.add_argument("--beta2", type=_beta, help="AdamW's beta2, the decay of its squared "
                   "gradient average, in [0, 1) " + default("beta2"))
    t.add_argument("--grad-clip", type=_non_negative_float, help="clip the gradients to this "
                   "global norm (0: no clipping, as nanoGPT's grad_clip) " + default("grad_clip"))
    t.add_argument("--eval-every", type=_positive_int, help="every this many steps, estimate "
                   "the validation loss and save the checkpoint " + default("eval_every"))
    t.add_argument("--eval-iters", type=_positive_int, help="batches per loss estimate "
                   + default("eval_iters"))
    t.add_argument("--seed", type=_seed, help="seed of the initial weights, the batches and "
                   "dropout " + default("seed"))
    t.add_argument("--precision", choices=["fp32", "bf16-mixed", "fp16-mixed"],
                   help="mixed precision: float32 weights and optimiser state, bfloat16 or "
                   "float16 activations and matmuls (fp16 with dynamic loss scaling); "
                   "default fp32, or the checkpoint's when resuming")
    t.add_argument("--gradient-accumulation-steps", type=_positive_int, metavar="N",
                   help="micro-batches of --batch-size per optimiser step, which takes their "
                   "mean gradient: an effective batch N times larger in the memory of one "
                   "(nanoGPT's gradient_accumulation_steps); default 1, or the checkpoint's "
                   "when resuming")
    t.add_argument("--out", type=_path, help="checkpoint directory (default: runs/CONFIG)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    t.add_argument("--allow-changed-settings", action="store_true",
                   help="with --resume: continue with training settings other than the "
                   "checkpoint's (--lr, --warmup, ...; --steps, --eval-every, --eval-iters "
                   "and --precision may change without it)")
    t.add_argument("--sample-tokens", type=_non_negative_int, default=300,
                   help="characters to sample after training, into OUT/sample.txt (0: none; "
                   "default: 300)")
    t.add_argument("--no-progress", action="store_true",
                   help="no progress bar while training (default: one, on stderr)")
    t.add_argument("-O", dest="pipeline", default="default", type=_pipeline("-O O0"),
                   help="pass pipeline: default, O0 (no passes), or comma-separated passes "
                   "(default: default)")
    t.add_argument("--fast-math", action="store_true", help="allow rewrites that assume "
                   "finite values and reassociating kernels (results may differ from numpy's)")
    t.add_argument("--memory-limit", type=_memory_size, help="memory budget of the training "
                   "step (each rank's, with --ranks), in bytes or as 200MB, 1.5GiB: "
                   "activations are recomputed in the backward pass until its plan fits "
                   "(default: no limit)")
    t.add_argument("--ranks", type=_positive_int, help="train on N processes of this machine "
                   "(starts mpiexec -n N; on many machines run mpiexec -n N graphc train; "
                   "default: one process)")

    d = sub.add_parser("dump", help="print a graph's IR (text, JSON, dot, svg, png, pdf, GraphML), "
                       "before/after passes, with statistics")
    d.add_argument("target", help="gpt, mlp, FILE.py:FUNCTION, MODULE:FUNCTION, or a saved "
                   ".ir/.json file")
    d.add_argument("--config", help="GPT config for the gpt target (default: tiny)")
    d.add_argument("--grad", action="store_true", help="the training graph: loss and "
                   "gradients")
    d.add_argument("--after", metavar="STAGE", help="stop after this pass (NAME#2: after "
                   "its second run; the default pipeline runs simplify twice), or after this "
                   "lowering stage: fuse (the fused graph), plan-memory (each value's buffer), "
                   "choose-kernels (each node's kernel), render (the plan's source)")
    d.add_argument("--memory-limit", type=_memory_size, help="run the rematerialize pass "
                   "after the pipeline with this budget (--after rematerialize shows its "
                   "graph; its report goes to stderr)")
    d.add_argument("--passes", type=_pipeline("-O0", stages=("fuse",)),
                   help="comma-separated passes instead of the default pipeline")
    d.add_argument("-O0", dest="O0", action="store_true", help="no passes: the traced graph")
    d.add_argument("--stats", action="store_true", help="node counts, parameters, FLOPs, "
                   "peak memory, per-pass counts")
    d.add_argument("--diff", nargs=2, metavar=("A", "B"), help="unified diff of the IR "
                   "between two stages (input, a pass name, name#2, or a number)")
    d.add_argument("--format", default="text",
                   choices=["text", "json", "dot", "svg", "png", "pdf", "graphml"],
                   help="output format; svg, png and pdf are drawn by Graphviz's dot "
                   "(default: text)")
    d.add_argument("-o", "--output", type=_path, help="write to this file instead of stdout")
    d.add_argument("--collapse", action="store_true", help="fold each layer into one box; "
                   "in text, print a control-flow body shared by several nodes once")
    d.add_argument("--locations", action="store_true", help="annotate source lines")
    d.add_argument("--full", action="store_true", help="print large constants in full")
    d.add_argument("--batch", help="gpt and mlp: the batch size, or a name for a symbolic "
                   "batch dimension (one plan for every batch size): --batch batch (default: "
                   "the config's batch size for gpt, 32 for mlp)")
    d.add_argument("--bind", action="append", metavar="NAME=SIZE", help="sizes for a graph's "
                   "symbolic dimensions, for lowering stages and --stats (repeatable)")

    b = sub.add_parser("bench", help="benchmark compiled vs -O0 vs eager vs PyTorch")
    from .bench import add_arguments
    add_arguments(b)

    pr = sub.add_parser("profile", help="time every kernel of a compiled GPT training step")
    from .models.gpt import CONFIGS
    # train's --config is a name too (no file): the same names, from the same table
    pr.add_argument("--config", default="small", choices=tuple(CONFIGS),
                    help="the GPT whose step is profiled: one of the built-in configs that "
                    f"graphc train --config names ({', '.join(CONFIGS)}), at its own sizes "
                    "(train's --n-layer, --n-embd, ... are not taken here; no config file: "
                    "train takes none either) (default: small)")
    pr.add_argument("--repeat", type=_positive_int, default=5,
                    help="profiled steps, each kernel's time their mean (default: 5)")
    pr.add_argument("--top", type=_non_negative_int, default=20,
                    help="slowest kernels to list, 0 for all (default: 20)")
    pr.add_argument("--json", type=_path, help="also write every kernel's row (as "
                    "Plan.profile returns them) to this JSON file")
    pr.add_argument("--warm", action="store_true",
                    help="also time each kernel again right after itself (its operands in the "
                         "caches): what it waited for memory the step had left cold")

    e = sub.add_parser("eval", help="a checkpoint's loss over the whole validation split")
    e.add_argument("--checkpoint", required=True, type=_path,
                   help="a checkpoint directory or file")
    e.add_argument("--data", type=_path, help="the text it was trained on (default: the "
                   "bundled Tiny Shakespeare); its vocabulary must be the checkpoint's")
    e.add_argument("--split", choices=("val", "train"), default="val",
                   help="the split to score: the text's last 10%% or its first 90%% "
                   "(default: val)")

    s = sub.add_parser("sample", help="generate text from a checkpoint or a GPT-2 directory")
    source = s.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=_path, help="a graphc checkpoint directory or file")
    source.add_argument("--model", type=_path, help="a Hugging Face GPT-2 directory (config.json, "
                        "model.safetensors, tokenizer.json)")
    s.add_argument("--prompt", help="text to continue, at least one character for "
                   "--checkpoint (default: a newline, or the first character of the vocabulary "
                   "if the text had no newline; for --model, GPT-2's <|endoftext|>)")
    s.add_argument("--tokens", type=_positive_int, default=300,
                   help="tokens to generate (default: 300)")
    s.add_argument("--temperature", type=_non_negative_float, default=0.8,
                   help="divides the logits: lower is more predictable, 0 takes the likeliest "
                   "token (default: 0.8)")
    s.add_argument("--top-k", type=_non_negative_int, help="sample from the k likeliest "
                   "tokens (default: all, where transformers' generate keeps 50); 0: all, as "
                   "transformers' top_k=0")
    s.add_argument("--top-p", type=_probability, help="sample from the most likely tokens "
                   "whose probability reaches this (nucleus sampling; default: all)")
    s.add_argument("--seed", type=_seed, default=0, help="seed of the sampling (default: 0)")
    s.add_argument("--ignore-eos", action="store_true", help="keep sampling past the model's "
                   "end-of-text token (--model: its eos_token_id, where it stops by default, "
                   "as transformers' generate does; a checkpoint has none)")
    s.add_argument("--min-new-tokens", type=_non_negative_int, help="no end-of-text token "
                   "among the first N new tokens (transformers' min_new_tokens; default: the "
                   "model's generation_config.json, else 0; a checkpoint has no such token)")
    s.add_argument("--repetition-penalty", type=_positive_float, help="divides the positive "
                   "logits of the tokens already in the text by it, multiplies the negative "
                   "ones (transformers' repetition_penalty; 1: none; default: the model's "
                   "generation_config.json, else 1)")
    s.add_argument("--no-repeat-ngram-size", type=_non_negative_int, metavar="N",
                   help="never repeat an N-gram of the text (transformers' "
                   "no_repeat_ngram_size; 0: off; default: the model's generation_config.json, "
                   "else 0)")
    s.add_argument("--min-p", type=_unit_interval, help="sample only tokens at least this "
                   "many times as likely as the likeliest (transformers' min_p; 0: off; "
                   "default: the model's generation_config.json, else off)")
    s.add_argument("--do-sample", action=argparse.BooleanOptionalAction, help="--no-do-sample "
                   "takes the likeliest token, as --temperature 0 (transformers' do_sample; "
                   "default: the model's generation_config.json, else sample)")
    s.add_argument("--dtype", choices=["float32", "float64", "bfloat16", "float16"],
                   help="the weights' dtype (default: the checkpoint's; float32 for --model); "
                   "half precision halves their memory")
    return parser


@no_user_code_above  # (its caller is the launcher script, not the user's code)
def main(argv=None) -> int:
    from . import distributed
    argv = list(sys.argv[1:] if argv is None else argv)
    every_rank = False
    if argv[:1] == ["train"] and distributed.under_mpiexec():
        # before anything this rank alone may refuse (its variables), its command line too
        distributed.join_job()
        every_rank = distributed.joined()
    parser = build_parser()
    parser.every_rank = parser.commands["train"].every_rank = every_rank
    args = parser.parse_args(argv)
    args.argv = argv
    python_form, warnings.formatwarning = warnings.formatwarning, _format_warning
    try:
        return _run(args)
    finally:
        warnings.formatwarning = python_form


def _format_warning(message, category, filename, lineno, line=None):
    """Every warning as one line, `graphc: warning: ...`: Python's form names a file and
    line and prints that line's source, under the command the launcher's
    `sys.exit(main())`, which tells its user nothing. A warning whose text does not say
    graphc's (numpy's, a library's) keeps its category's name. (Replacing formatwarning,
    not showwarning, leaves warnings that a caller records as they were.)"""
    text = str(message)
    if text.startswith("graphc: ") or category.__module__.split(".")[0] in _LAYERS:
        return _warning_line(text.removeprefix("graphc: "))
    return _warning_line(f"{category.__name__}: {text}")


_LAYERS = ("graphc", "runtime", "passes", "ir")  # the modules graphc's own categories live in


def _warning_line(text: str) -> str:
    return f"graphc: warning: {text}\n"


def _run(args) -> int:
    from . import distributed
    try:
        for warning in settings.check_environment():
            print(_warning_line(warning), file=sys.stderr, end="")
        if args.command == "train":
            return cmd_train(args)
        if args.command == "sample":
            return cmd_sample(args)
        return _printing_command(args)
    except (GraphcError, DataError, CheckpointError, UsageError, ValueError, OSError) as exc:
        # (a GraphcError's location is the user's line: main() is no_user_code_above, so
        # none is the launcher's)
        message = str(exc) if isinstance(exc, GraphcError) else str(exc).splitlines()[0]
        if getattr(exc, "on_every_rank", False):
            return _agreed_exit(2, f"graphc: error: {message}")
        print(f"graphc: error: {message}", file=sys.stderr)
        if distributed.under_mpiexec() and distributed.joined():
            distributed.leave_now(2)  # this rank's alone: the others may wait for it
        return 2
    except KeyboardInterrupt:
        print("graphc: interrupted", file=sys.stderr)
        return 130
    return 0


def _printing_command(args) -> int:
    """eval, bench, dump or profile, with stdout's reader noted as train and sample note it:
    one that went away (`graphc dump gpt | head`) failed the command with `graphc: error:
    [Errno 32] Broken pipe` and status 2, and bench lost the --json it had measured for
    minutes. Now the rest of the output is discarded, the command finishes (bench writes its
    --json and --plot), and it ends quietly with SIGPIPE's status, 141, as `yes | head`."""
    from .trainer import _reader_aware_stdout
    with _reader_aware_stdout() as stdout:
        if args.command == "eval":
            status = cmd_eval(args)
        elif args.command == "bench":
            from .bench import run_cli
            status = run_cli(args)
        elif args.command == "dump":
            from .dump import run_dump
            status = run_dump(args)
        else:
            from .bench import profile_step
            profile_step(args.config, args.repeat, args.top or None, warm=args.warm,
                         json_path=args.json)
            status = 0
        stdout.flush()  # here, where a reader gone is noted, not at the interpreter's exit
    return 128 + stdout.reader_gone if stdout.reader_gone and not status else status


def _agreed_exit(status: int, line: str | None = None) -> int:
    """The end of a command after a failure (or a stop) that every rank reached the same
    way, `line` said once, by rank 0: under `graphc train --ranks N` each rank returns 0 and
    the launcher exits with `status` (distributed.exit_status); under the user's own
    mpiexec the ranks leave with it together (distributed.leave_together); in one process it
    is returned."""
    from . import distributed
    returned = distributed.exit_status(status)
    if returned and distributed.under_mpiexec() and distributed.joined():
        distributed.leave_together(returned, line)
    if line is not None and distributed.is_main():
        print(line, file=sys.stderr)
    return returned


# ---- train ----------------------------------------------------------------------------------
def _options(args) -> dict:
    from .train import MODEL_OPTIONS, TRAIN_OPTIONS
    return {k: getattr(args, k, None) for k in MODEL_OPTIONS + TRAIN_OPTIONS}


def _model_config(args, vocab_size):
    from .train import model_config
    return model_config(args.config, vocab_size, _options(args))


def _train_config(args, saved=None):
    from .train import train_config
    return train_config(args.config, _options(args), saved)


def _check_ranks(args) -> None:
    """--ranks, checked before mpiexec starts them: each rank would find a batch that does
    not split, or a machine overrun (1000 ranks on 2 cores ran for minutes, then failed)."""
    from .models.gpt import CONFIGS
    from .distributed import check_process_count
    check_process_count("--ranks", args.ranks)
    batch = args.batch_size or (None if args.resume else
                                CONFIGS.get(args.config, {}).get("batch_size"))
    if batch is not None and batch % args.ranks:  # (a resumed run's is in its checkpoint)
        if args.resume:  # (its --batch-size must be the checkpoint's: a multiple is refused)
            from .train import rank_counts_dividing
            raise GraphcError(f"--batch-size {batch} does not split over {args.ranks} ranks "
                              f"(--ranks), and a resumed run keeps its checkpoint's batch "
                              f"size: resume it on a number of ranks that divides it "
                              f"({rank_counts_dividing(batch)})")
        raise GraphcError(f"--batch-size {batch} does not split over {args.ranks} ranks "
                          f"(--ranks); use a multiple of {args.ranks}")


def cmd_train(args) -> int:
    from . import distributed
    from .train import train_gpt
    if args.allow_changed_settings and not args.resume:  # (it was ignored: a user who
        # forgot --resume trained from scratch, or was told the checkpoint already exists)
        exc = UsageError("--allow-changed-settings is for --resume: it lets a resumed run "
                         "change the checkpoint's settings; a fresh run has none to change")
        exc.on_every_rank = True  # (from the command line, which every rank parses alike)
        raise exc
    if args.ranks and distributed.under_mpiexec():
        distributed.check_ranks_option(args.ranks)  # its job is running: --ranks must match
    if args.ranks and args.ranks > 1 and not distributed.under_mpiexec():
        _check_ranks(args)
        return distributed.launch(args.ranks, ["-m", "graphc.cli",
                                               *distributed.without_option(args.argv,
                                                                           "--ranks")]).returncode
    stopped = train_gpt(args.config, data=args.data, out=args.out, resume=args.resume,
                        options=_options(args), sample_tokens=args.sample_tokens,
                        progress=not args.no_progress, pipeline=args.pipeline,
                        fast_math=args.fast_math, distributed=distributed.under_mpiexec(),
                        memory_limit=args.memory_limit,
                        allow_changed_settings=args.allow_changed_settings)
    # 128 + N: what shells report for a process ended by signal N. Under mpiexec the ranks
    # agreed on the stop (at a step boundary), so it is handed over as agreed failures are
    return distributed.exit_status(128 + stopped) if stopped else 0


# ---- sample ---------------------------------------------------------------------------------
def _load_model(path, dtype=None):
    """(model, parameters, checkpoint header) from a checkpoint directory or file; `dtype`:
    the weights converted to it (None: as saved)."""
    from ir.types import as_dtype

    from . import checkpoint
    from .models.gpt import GPT, GPTConfig

    given = path
    if os.path.isdir(path):
        path = os.path.join(path, CHECKPOINT)
    try:
        arrays, meta = checkpoint.load(path, optimizer=False)  # no AdamW state needed
    except CheckpointError:
        # a GPT-2 directory given to the wrong option was "no checkpoint at 'gpt2/checkpoint
        # .npz'" (its model.safetensors: "corrupt or not a graphc checkpoint"); a damaged
        # checkpoint beside a config.json of the user's keeps its own error
        # (a file named in one must be there and no graphc checkpoint: a missing name or a
        # dangling link keeps "no checkpoint at", "a dangling symbolic link"; so does a
        # checkpoint.npz there that is a dangling link)
        directory = given if os.path.isdir(given) else (os.path.dirname(given) or ".") \
            if os.path.isfile(given) and not _is_graphc_checkpoint(given) else None
        if directory is not None and not os.path.lexists(os.path.join(directory, CHECKPOINT)) \
                and _holds_gpt2_files(directory):
            raise UsageError(f"--checkpoint {given!r} is {'' if directory == given else 'in '}"
                             f"a Hugging Face GPT-2 directory, not a graphc checkpoint: "
                             f"graphc sample takes {directory!r} as --model") from None
        raise
    config = GPTConfig.from_dict(meta["model"])
    if dtype is not None:
        config.dtype = dtype
        with np.errstate(over="ignore"):  # a weight past float16's range: refused below
            arrays = {k: v.astype(as_dtype(dtype)) if k.startswith("param/") else v
                      for k, v in arrays.items()}
        for key, value in arrays.items():
            # (in the dtype itself: a float64 weight past float32's range is no overflow)
            if key.startswith("param/") and not np.isfinite(value).all():
                raise UsageError(f"--dtype {dtype}: {key[len('param/'):]} of {path!r} holds "
                                 f"values too large for {dtype}")
    model = GPT(config)
    params = {}
    for name, p in model.named_parameters():
        key = f"param/{name}"
        if key not in arrays or arrays[key].shape != p.data.shape:
            raise CheckpointError(f"checkpoint {path!r} does not match its own model config "
                                  f"at {name}")
        params[name] = arrays[key]
    return model, params, meta


def cmd_eval(args) -> int:
    from .train import checkpoint_text, split_loss

    model, params, meta = _load_model(args.checkpoint)
    if args.data is not None and os.path.isdir(args.data):
        raise UsageError(f"--data {args.data!r} is a directory; pass a UTF-8 text file")
    data = checkpoint_text(args.data, model.cfg.block_size, list(meta["vocab"]),
                           f"--checkpoint {args.checkpoint}", (args.split,))
    loss, tokens = split_loss(model, params, data, args.split)
    name = "validation" if args.split == "val" else "training"
    print(f"{name} loss {loss:.4f} nats per token over the whole {args.split} split "
          f"({tokens:,} tokens in windows of {model.cfg.block_size}; checkpoint at step "
          f"{meta.get('step', '?')})")
    return 0


def cmd_sample(args) -> int:
    from .data import CharData, universal_newlines
    from .sample import Sampler, default_prompt

    if args.prompt is not None:
        try:
            args.prompt.encode("utf-8")
        except UnicodeEncodeError as exc:  # bytes the locale could not decode (surrogates)
            byte = ord(args.prompt[exc.start]) & 0xFF
            raise UsageError(f"--prompt is not UTF-8 text (byte 0x{byte:02x} at character "
                             f"{exc.start})") from None
    if args.model is not None:
        return _sample_pretrained(args)
    model, params, meta = _load_model(args.checkpoint, args.dtype)
    vocab = list(meta["vocab"])
    data = CharData(vocab, np.zeros(0, np.int64), np.zeros(0, np.int64))
    text = default_prompt(vocab) if args.prompt is None else args.prompt
    if "\r" not in vocab:  # (a prompt with Windows line ends, read as the training text was)
        text = universal_newlines(text)
    if not text:  # (it started from the vocabulary's first character, whatever that was)
        raise UsageError("--prompt is empty, and a checkpoint has no start-of-text token to "
                         "begin from; give at least one character, or leave --prompt out to "
                         f"start from {default_prompt(vocab)!r}")
    try:
        prompt_ids = data.encode(text)
    except DataError as exc:  # the default prompt is the vocabulary's own
        raise UsageError(f"--prompt: {exc} (the checkpoint's)") from None
    ids = Sampler(model, params).stream(prompt_ids, args.tokens, **_settings(args),
                                        **_processing(args))
    return _print_stream(text, (vocab[i] for i in ids))


def _sample_pretrained(args) -> int:
    from .models import gpt2
    from .sample import Sampler

    try:
        model, params = gpt2.load_gpt2(args.model, args.dtype or "float32")
    except GraphcError:
        # a graphc checkpoint given to the wrong option was "model directory 'run' has no
        # config.json" (its file: "is not a directory")
        # (not a GPT-2 directory holding a checkpoint.npz too: its own error, a config's
        # bad n_head, was "is a graphc checkpoint")
        if _is_graphc_checkpoint(args.model) and not (os.path.isdir(args.model)
                                                      and _holds_gpt2_files(args.model)):
            raise UsageError(f"--model {args.model!r} is a graphc checkpoint, not a Hugging "
                             "Face GPT-2 directory: pass it as --checkpoint") from None
        raise
    tokenizer = gpt2.load_tokenizer(args.model, model.cfg.vocab_size)
    text = args.prompt or ""
    try:  # (with its special tokens, as transformers' tokenizer(prompt): add_bos_token's bos)
        # (an empty one starts from the bos_token_id below, whatever encode would add)
        prompt_ids = tokenizer.encode(text, add_special_tokens=True) if text else []
    except GraphcError as exc:
        raise UsageError(f"--prompt: {exc.message}") from None
    # (no id of its own: its normaliser removed every character)
    if text and len(prompt_ids) == tokenizer.special_tokens_added:
        raise UsageError(f"--prompt {text!r} encodes to no tokens with {tokenizer.path} (its "
                         "normalizer removes every character); pass another")
    if not text:  # (only an empty prompt starts from <|endoftext|>, never one of the user's)
        try:
            prompt_ids = [gpt2.start_token(args.model, model.cfg.vocab_size)]
        except GraphcError as exc:
            raise UsageError(f"{exc.message}; pass a non-empty --prompt") from None
    ids = Sampler(model, params).stream(prompt_ids, args.tokens, **_settings(args),
                                        stop_tokens=() if args.ignore_eos else None,
                                        **_processing(args))
    return _print_stream(text, tokenizer.decode_stream(ids))


def _settings(args) -> dict:
    """graphc sample's sampling options, by keyword (Sampler's are keyword-only)."""
    return dict(temperature=args.temperature, top_k=args.top_k, seed=args.seed,
                top_p=args.top_p, min_new_tokens=args.min_new_tokens)


def _processing(args) -> dict:
    """graphc sample's options for transformers' logits processors (None: the model's)."""
    return dict(repetition_penalty=args.repetition_penalty,
                no_repeat_ngram_size=args.no_repeat_ngram_size, min_p=args.min_p,
                do_sample=args.do_sample)


def _holds_gpt2_files(directory) -> bool:
    """Whether `directory` has a Hugging Face GPT-2 directory's config.json and
    model.safetensors."""
    from .models import gpt2
    return all(os.path.isfile(os.path.join(directory, name))
               for name in (gpt2.CONFIG_FILE, gpt2.WEIGHTS_FILE))


def _is_graphc_checkpoint(path) -> bool:
    """Whether `path` (a checkpoint directory or file) holds what graphc train saves: a zip
    with graphc's header member (files.is_checkpoint)."""
    from .files import is_checkpoint
    if os.path.isdir(path):
        path = os.path.join(path, CHECKPOINT)
    return os.path.isfile(path) and is_checkpoint(path)  # (isfile: a FIFO would block)


def _print_stream(text, pieces) -> int:
    """The prompt, each sampled token's text as it comes (nothing is kept, so --tokens can
    be as large as the reader cares to read, and each token shows as soon as it is
    sampled), then a newline. A reader that stops (`| head`) ends the command quietly with
    the status of a process SIGPIPE ended, as `yes | head` leaves. No stdout (`>&-`,
    sys.stdout None): the text is discarded, as print() discards it, status 0."""
    from .trainer import _ReaderAwareStdout
    # (over no stream it discards, as print() does; a reader gone is noted, not raised, and
    # another failure to write names stdout)
    out = _ReaderAwareStdout(sys.stdout)
    try:
        for piece in itertools.chain((text,), pieces, ("\n",)):
            out.write(piece)
            out.flush()
            if out.reader_gone:  # (stdout now goes to /dev/null)
                return 128 + out.reader_gone
    except (Exception, KeyboardInterrupt):
        # the error line (stderr) was glued to the text printed so far: end it first
        with contextlib.suppress(OSError):
            out.write("\n")
            out.flush()
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
