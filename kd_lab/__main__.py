"""Command line: ``python -m kd_lab {data,teacher,run,methods,bench,compare,sweep} ...`` (``--help`` on each)."""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

__all__ = ["main"]


def _guess_value(text: str):
    """An int, a float, True/False/None, or the text itself (an option whose default is None)."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def _option_value(key: str, text: str, default, knob):
    """``--set KEY=VALUE``'s value as the type of the option's default (an ``"int"`` knob: an integer; a
    default of None: guessed from the text); a value of another type is an error that names it."""
    kind = type(default) if default is not None else {"int": int, "linear": float, "log": float}.get(
        getattr(knob, "scale", None))
    if default is None and text.lower() == "none":
        return None
    if kind is bool:
        if text.lower() not in ("true", "false"):
            raise ValueError(f"option {key!r} takes true or false, got {text!r}")
        return text.lower() == "true"
    if kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            raise ValueError(f"option {key!r} takes {'an integer' if kind is int else 'a number'}, "
                             f"got {text!r}") from None
    return text if kind is str else _guess_value(text)


def _parse_sets(pairs: list[str]) -> dict[str, str]:
    """``["KEY=VALUE", ...]`` -> ``{KEY: "VALUE"}`` (texts; :func:`_option_value` types them)."""
    options = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--set expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        options[key.strip()] = value.strip()
    return options


# ------------------------------------------------------------------------- checks of the options
_SETTING_INTEGERS = ("epochs", "batch_size", "test_size", "steps", "eval_every")


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _check_setting_options(args) -> None:
    """The numbers of ``run``'s and ``compare``'s setting options, checked before anything is loaded
    (:func:`kd_lab.checks.check_number`: a positive integer, a finite learning rate > 0); the message names the
    option as it was typed."""
    from .checks import check_integer, check_number
    for dest in _SETTING_INTEGERS:
        if getattr(args, dest, None) is not None:
            check_integer(_flag(dest), getattr(args, dest), 1)
    if getattr(args, "lr", None) is not None:
        check_number("--lr", args.lr, 0, low_open=True)


def _labeled_option(text: str) -> int | None:
    """``run --labeled``: a positive integer, or ``all`` (None: every training image)."""
    if text.strip().lower() == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < 1:
        raise ValueError(f"--labeled takes a positive integer or 'all', got {text!r}")
    return value


def _check_seeds(seeds: list[int]) -> list[int]:
    """``run --seeds``: non-negative integers, each once (a seed given twice would be counted twice)."""
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise ValueError(f"--seeds names seed(s) {twice} more than once; give each seed once, e.g. --seeds 0 1 2")
    negative = [s for s in seeds if s < 0]
    if negative:
        raise ValueError(f"--seeds takes integers >= 0, got {negative}")
    return seeds


def _check_device(text: str) -> str:
    """``--device``: one this machine has (:func:`kd_lab.train.pick_device`; MPS and a CUDA index too)."""
    import torch

    from .train import pick_device
    dev = pick_device(text)                     # an unknown name, or CUDA where there is none: ValueError
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {text!r} is not one kd_lab trains on; use {DEVICE_HELP}")
    mps = getattr(torch.backends, "mps", None)
    if dev.type == "mps" and not (mps and mps.is_available()):
        raise ValueError(f"device {text!r} was asked for but Apple's MPS is not available here; use 'auto' or 'cpu'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {text!r} was asked for but this machine has {torch.cuda.device_count()} CUDA "
                         f"device(s), cuda:0..cuda:{torch.cuda.device_count() - 1}")
    return text


def _check_out(text: str) -> Path:
    """``compare --out``: a CSV file to write, not a folder."""
    out = Path(text)
    if out.is_dir():
        raise ValueError(f"--out takes the path of a CSV file, got the folder {out}; e.g. --out {out / 'runs.csv'}")
    if out.parent.exists() and not out.parent.is_dir():
        raise ValueError(f"--out {out}: {out.parent} is a file, not a folder")
    return out


def cmd_data(args) -> int:
    from . import data
    root = data.fetch(args.name, verbose=True, apt=args.apt)
    train, test = data.load(args.name)
    print(f"{args.name}: {len(train)} train / {len(test)} test images of {tuple(train.x.shape[1:])} in {root}")
    return 0


def cmd_teacher(args) -> int:
    from . import zoo
    _check_device(args.device)
    model = zoo.get_teacher(args.dataset, args.recipe, args.device, retrain=args.retrain, amp=args.amp)
    info = model.zoo_info
    print(f"teacher for {args.dataset}: test accuracy {100 * info['test_acc']:.2f} %, trained in "
          f"{info['train_s']:.0f} s on {info['device']} (amp {info.get('amp')}); file {info['path']}")
    if args.ship:
        zoo.SHIPPED_DIR.mkdir(exist_ok=True)
        dest = zoo.SHIPPED_DIR / Path(info["path"]).name
        if str(dest) != info["path"]:
            shutil.copyfile(info["path"], dest)
        print(f"shipped copy: {dest}")
    return 0


def _split_method_options(method: str, args) -> dict:
    """The method options of ``run``: ``--temperature``, ``--alpha`` and each ``--set KEY=VALUE``, typed by the
    option's default in the registry; an option the method does not have is an error that lists its options."""
    from .methods import check_options, method_info
    info = method_info(method)
    texts = _parse_sets(args.set)
    options = {k: getattr(args, k) for k in ("temperature", "alpha") if getattr(args, k) is not None}
    dropped = [k for k in [*options, *texts] if k not in info.defaults]
    if dropped:
        raise ValueError(f"method {method!r} has no option(s) {dropped}; allowed: {sorted(info.defaults) or 'none'}")
    typed = {k: _option_value(k, v, info.defaults[k], info.knobs.get(k)) for k, v in texts.items()}
    return check_options(method, {**options, **typed})          # no NaN, no inf, no bool for a number


def cmd_run(args) -> int:
    """Train ``args.method`` for each seed. A seed stopped by Ctrl-C (or a kill) ends the command unless
    ``--keep-going``; a seed whose training fails is marked and the others run on. Only finished seeds enter
    the mean. Exit status: 0 when every seed finished, 130 when one was stopped, 1 when one failed."""
    import signal

    from .experiments import Setting
    seeds = _check_seeds(args.seeds)
    _check_device(args.device)
    _check_setting_options(args)
    options = _split_method_options(args.method, args)
    overrides = {k: getattr(args, k) for k in ("dataset", "epochs", "batch_size", "lr", "student", "test_size")
                 if getattr(args, k) is not None}
    if args.labeled is not None:
        overrides["labeled"] = _labeled_option(args.labeled)
    if args.no_teacher_cache:
        overrides["teacher_cache"] = False
    setting = Setting.default(**overrides)
    histories = []
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)    # kill: stop like Ctrl-C
    try:
        for seed in seeds:
            h = _run_seed(args.method, setting, seed, args.device, options)
            histories.append(h)
            print(f"[kd_lab] {args.method} seed {seed}: {_seed_status(h)}", file=sys.stderr, flush=True)
            if args.json:
                print(json.dumps({"method": args.method, "seed": seed, "accuracy": h.test_acc,
                                  "images_per_s": h.images_per_s, "wall_s": h.wall_s, "device": h.device,
                                  "status": h.status, "error": h.error, "final_loss_terms": h.final_terms(),
                                  "options": options, "config": h.config, "setting": vars(setting),
                                  "last_epoch": h.epochs[-1] if h.epochs else None}, default=str), flush=True)
            if h.status == "stopped" and not args.keep_going:
                break
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not args.json:
        _print_run_table(args.method, histories, setting, seeds)
    statuses = {h.status for h in histories}
    return 130 if "stopped" in statuses else 1 if statuses != {"finished"} else 0


def _run_seed(method: str, setting, seed: int, device: str, options: dict):
    """One seed of ``run``: its History, with status ``finished``, ``stopped`` (Ctrl-C or a kill) or
    ``failed`` (an error while training, kept in ``history.error``). An error before training starts (a bad
    option value, data that cannot be had) is not the seed's: it ends the command."""
    from .experiments import run_method
    from .train import History
    try:
        return run_method(method, setting, seed=seed, device=device, progress=True, **options)  # bar on stderr
    except KeyboardInterrupt:                   # outside the training loop: loading data, the teacher, evaluating
        return History(method=method, seed=seed, status="stopped")
    except Exception as err:  # noqa: BLE001 - a training failure is this seed's; anything else is re-raised
        if getattr(err, "history", None) is None:
            raise
        return err.history


def _seed_status(h) -> str:
    """``finished, test accuracy 84.10 %``, ``stopped at epoch 3 of 40 (not counted)``, ``failed: ...``."""
    if h.status == "finished":
        return f"finished, test accuracy {100 * (h.test_acc or 0):.2f} %"
    if h.status == "stopped" and not h.config:
        return "stopped before its training began (not counted)"
    if h.status == "stopped":
        return f"stopped after epoch {len(h.epochs)} of {h.config.get('epochs', '?')} (not counted)"
    return f"{h.status}: {h.error or 'no error recorded'} (not counted)"


def _print_run_table(method, histories, setting, seeds) -> None:
    """The runs of ``run`` with their status; the mean and std over the finished seeds only, and which seeds
    it leaves out (stopped, failed, not run)."""
    from .experiments import summarize
    print(f"\n{method} on {setting.dataset}: {setting.labeled or 'all'} labeled, {setting.epochs} epochs, "
          f"student {setting.student}")
    print(f"{'seed':>4} | {'status':<8} | {'test acc %':>10} | {'images/s':>9} | {'wall s':>7} | final loss terms")
    for h in histories:
        terms = ", ".join(f"{k}={v:.3f}" for k, v in h.final_terms().items())
        acc = f"{100 * h.test_acc:.2f}" if h.status == "finished" and h.test_acc is not None else "–"
        print(f"{h.seed:>4} | {h.status:<8} | {acc:>10} | {h.images_per_s or 0:>9.0f} | {h.wall_s:>7.1f} | {terms}")
    s = summarize(histories)
    left_out = [f"seed {h.seed} ({h.status})" for h in histories if h.status != "finished"]
    left_out += [f"seed {seed} (not run)" for seed in seeds[len(histories):]]
    print(f"mean ± std over {s['n']} seed(s): {s['text']} %"
          + (f"; not counted: {', '.join(left_out)}" if left_out else ""))
    for h in histories:
        if h.status == "failed":
            print(f"seed {h.seed} failed: {h.error}")


def cmd_methods(args) -> int:
    """Every registered method in course order: lesson, class (or preset), teacher, options and defaults."""
    from .methods import method_info, method_names
    for name in method_names():
        info = method_info(name)
        kind = f"preset of {info.base}" if info.base else info.cls.__name__
        teacher = "yes" if info.cls.needs_teacher else "no"
        options = ", ".join(f"{k}={v}" for k, v in info.defaults.items()) or "–"
        print(f"{name:<8} | {info.lesson or '–':<19} | {kind:<16} | teacher: {teacher:<3} | {options}")
    return 0


def cmd_bench(args) -> int:
    from .bench import main as bench_main
    return bench_main(args)


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def cmd_compare(args) -> int:
    from dataclasses import replace

    from . import compare
    from .experiments import Setting
    from .train import quick_mode
    _check_setting_options(args)
    _check_device(args.device)
    overrides = {k: getattr(args, k) for k in ("dataset", "epochs", "batch_size", "lr", "student", "test_size",
                                                "steps") if getattr(args, k) is not None}
    setting = Setting.default(**overrides)
    setting = replace(setting, eval_every=setting.epochs if args.eval_every is None else args.eval_every)
    out = _check_out(args.out) if args.out else compare.default_out(setting.dataset, quick_mode())
    return _run_resumable(out, lambda: compare.run_comparison(args.methods, args.seeds, args.labeled, setting,
                                                              args.device, out, resume=args.resume,
                                                              baseline=args.baseline))


def _run_resumable(out, run) -> int:
    """``run()`` a grid that appends rows to ``out``; SIGTERM (kill) stops it like Ctrl-C, the CSV stays valid and
    the same command resumes. Prints the report ``out.md`` when it finished."""
    import signal
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        run()
    except KeyboardInterrupt:
        print(f"interrupted; finished runs are in {out}: run the same command again to resume", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(out.with_suffix(".md").read_text())
    print(f"rows: {out}; report: {out.with_suffix('.md')}")
    return 0


def cmd_sweep(args) -> int:
    """Run (or with --dry-run list) the missing cells of a sweep spec; SIGTERM stops it like Ctrl-C."""
    import os
    if args.quick:
        os.environ["KD_LAB_QUICK"] = "1"          # before anything reads it; worker processes inherit it
    from . import sweep
    spec = sweep.load_spec(args.file)
    out = sweep.default_out(spec, args.results)
    if args.dry_run:
        cells, _ = sweep.plan_cells(spec, args.device)
        todo = sweep.todo_cells(cells, out, resume=not args.fresh)
        copied = sweep.reusable_rows(todo, out) if not args.fresh else {}
        print(f"{spec.name}: {len(todo) - len(copied)} of {len(cells)} cells to run -> {out}"
              + (f" ({len(copied)} more copied from other results files)" if copied else ""))
        for c in todo:
            grid = ", ".join(f"{k}={v}" for k, v in c["grid"].items())
            source = f"  (copied from {copied[c['cell_key']][1].name})" if c["cell_key"] in copied else ""
            print(f"  {c['cell_key']}  {c['arm']:<16} seed {c['seed']:<3} {grid}{source}")
        return 0
    return _run_resumable(out, lambda: sweep.run_sweep(spec, jobs=args.jobs, executor=args.executor,
                                                       address=args.address, device=args.device,
                                                       threads=args.threads, out=out, resume=not args.fresh))


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends ``(default: X)`` to an option's help unless the help already says its default, or the option
    has none to show (a flag, or a default of None: then the help says what happens without it)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.nargs == 0 or action.default in (None, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose help shows each option's default; its subcommands' parsers are of this class too."""

    def __init__(self, *args, formatter_class=_HelpFormatter, **kwargs):
        super().__init__(*args, formatter_class=formatter_class, **kwargs)


def _one_of(names) -> str:
    return "one of " + ", ".join(names)


def _add_setting_options(cmd: argparse.ArgumentParser, setting) -> None:
    """The options of ``run`` and ``compare`` that override the course's setting (``Setting.default()``: its
    values now, quick mode included, are the defaults the help shows)."""
    from .data import DATASETS
    from .models import PRESETS
    from .train import quick_mode
    quick = " in quick mode" if quick_mode() else ""
    cmd.add_argument("--dataset", help=f"data set: {_one_of(DATASETS)} (default: {setting.dataset})")
    cmd.add_argument("--epochs", type=int, help=f"training epochs (default: {setting.epochs}{quick})")
    cmd.add_argument("--student", help=f"student preset: {_one_of(PRESETS)} (default: {setting.student})")
    cmd.add_argument("--batch-size", type=int, help=f"images per step, > 0 (default: {setting.batch_size})")
    cmd.add_argument("--lr", type=float, help=f"peak learning rate of the cosine schedule (default: {setting.lr})")
    cmd.add_argument("--test-size", type=int, help="evaluate on the first N test images (default: "
                     + (f"{setting.test_size}{quick})" if setting.test_size else "all of them)"))


DEVICE_HELP = "auto (CUDA, then Apple's MPS, then the CPU), cpu, cuda, cuda:N or mps"


def build_parser() -> argparse.ArgumentParser:
    from .data import DATASETS
    from .experiments import Setting
    from .methods import method_names
    from .recipes import RECIPES
    setting = Setting.default()
    p = _Parser(prog="python -m kd_lab", description="kd_lab: knowledge distillation course tools",
                epilog="Each command's options, defaults and allowed values: python -m kd_lab COMMAND --help")
    sub = p.add_subparsers(dest="command", required=True, title="commands", metavar="COMMAND")

    d = sub.add_parser("data", help="fetch and check a data set")
    d.add_argument("name", nargs="?", default="fashion-mnist", help=f"data set: {_one_of(DATASETS)}")
    d.add_argument("--apt", action="store_true", default=None,
                   help="as a last resort run apt-get install dataset-fashion-mnist (as root); without it apt-get "
                        "runs only when KD_LAB_ALLOW_APT=1, and the error says what to install")
    d.set_defaults(func=cmd_data)

    t = sub.add_parser("teacher", help="get (cached) or train the teacher of a data set")
    t.add_argument("--dataset", default="fashion-mnist", help=f"data set: {_one_of(DATASETS)}")
    t.add_argument("--recipe", default=None, help=f"teacher recipe: {_one_of(RECIPES)} (default: full, quick in "
                   "quick mode without weights)")
    t.add_argument("--device", default="auto", help=DEVICE_HELP)
    t.add_argument("--amp", default="auto", help="auto (bf16 on CUDA and on CPUs with native bf16), bf16, or off")
    t.add_argument("--retrain", action="store_true", help="ignore the cache and the shipped weights")
    t.add_argument("--ship", action="store_true", help="copy the weights into kd_lab/weights/ (maintainers)")
    t.set_defaults(func=cmd_teacher)

    r = sub.add_parser("run", help="train a student with a method over seeds and print a table")
    r.add_argument("method", help=f"{_one_of(method_names())} (options: python -m kd_lab methods)")
    r.add_argument("--labeled", help=f"class-balanced labeled images, or 'all' (default: {setting.labeled})")
    r.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds, one run each")
    r.add_argument("--device", default="auto", help=DEVICE_HELP)
    _add_setting_options(r, setting)
    r.add_argument("--temperature", type=float, help="softmax temperature T > 0 of a KD-type method (default: the "
                   "method's, python -m kd_lab methods)")
    r.add_argument("--alpha", type=float, help="weight of the distillation term in [0, 1] (default: the method's)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other method option, typed like its default (default: none; python -m kd_lab methods "
                        "lists each method's options and defaults); repeat for several")
    r.add_argument("--json", action="store_true", help="print one JSON record per seed instead of the table "
                   "(progress still goes to stderr)")
    r.add_argument("--keep-going", action="store_true", help="after a Ctrl-C, stop only the seed it lands in and "
                   "run the next ones (without it Ctrl-C stops the command); stopped seeds are never counted")
    r.add_argument("--no-teacher-cache", action="store_true", help="run the teacher every step instead of reading "
                   "its outputs from the (image, view) cache (kd_lab.teacher_cache; the same numbers)")
    r.set_defaults(func=cmd_run)

    m = sub.add_parser("methods", help="every registered method: lesson, teacher, options and defaults")
    m.set_defaults(func=cmd_methods)

    b = sub.add_parser("bench", help="images/s of a KD epoch against a tutorial-style reference loop")
    b.add_argument("--device", default="auto", help=DEVICE_HELP)
    b.add_argument("--images", type=int, default=None,
                   help="training images per epoch (default: all on GPU, 6000 on CPU)")
    b.add_argument("--teacher-recipe", default=None, help=f"also time training this teacher recipe: "
                   f"{_one_of(RECIPES)} (default: none)")
    b.add_argument("--batch-size", type=int, default=128, help="batch size of both loops")
    b.add_argument("--methods", nargs="?", const="all", default=None, metavar="M1,M2",
                   help="instead: images/s of each method's training step, ratio to the first (default without "
                        "the option: the KD epoch; with no value: all methods)")
    b.set_defaults(func=cmd_bench)

    c = sub.add_parser("compare", help="every method on one budget over seeds: a CSV of runs and a table")
    c.add_argument("--methods", default="all", help="comma-separated methods (default: all registered)")
    c.add_argument("--seeds", type=int, default=3, help="number of seeds, 0..N-1 (default 3)")
    c.add_argument("--labeled", default="1000", help="labeled images, 'all', or a comma list of sizes")
    c.add_argument("--eval-every", type=int, help="measure test accuracy every N epochs (default: last only)")
    c.add_argument("--steps", type=int, help="a budget in optimizer steps for every method instead of --epochs "
                   "(default: none, the epochs decide)")
    _add_setting_options(c, setting)
    c.add_argument("--device", default="auto", help=DEVICE_HELP)
    c.add_argument("--out", help="CSV of runs (default results/compare-<dataset>.csv; -quick in quick mode)")
    c.add_argument("--baseline", default="scratch", help="method the table's Δ column compares with")
    resume = c.add_mutually_exclusive_group()
    resume.add_argument("--resume", dest="resume", action="store_true", default=True,
                        help="skip runs already in the CSV with status ok (default)")
    resume.add_argument("--fresh", dest="resume", action="store_false",
                        help="run everything again; new rows supersede the old ones")
    c.set_defaults(func=cmd_compare)

    w = sub.add_parser("sweep", help="run the missing cells of a sweep spec (experiments/*.toml): CSV and report")
    w.add_argument("file", help="the spec file, e.g. experiments/compare.toml (format: experiments/README.md)")
    w.add_argument("--jobs", type=int, default=1, help="local worker processes, each with cores/jobs threads")
    w.add_argument("--executor", default="local", choices=["local", "ray"],
                   help="local processes, or tasks on a running Ray cluster (--address)")
    w.add_argument("--address", help="the Ray cluster's address, e.g. 127.0.0.1:6379 (default: none)")
    w.add_argument("--device", default="auto", help=DEVICE_HELP)
    w.add_argument("--threads", type=int, help="torch threads per run (default: cores // jobs locally, 1 on Ray)")
    w.add_argument("--results", default="results", help="folder of the CSV and the report (<name>.csv, <name>.md)")
    w.add_argument("--dry-run", action="store_true", help="list the cells still to run, run nothing")
    w.add_argument("--quick", action="store_true", help="quick mode (as KD_LAB_QUICK=1): the spec's [quick] table, "
                   "and results to <name>-quick.csv")
    w.add_argument("--fresh", action="store_true", help="run every cell again; new rows supersede the old ones")
    w.set_defaults(func=cmd_sweep)
    return p


def main(argv=None) -> int:
    """Run a command. Every expected error is one line (or one message) on stderr and an exit status, never a
    traceback: 2 for a bad value (``ValueError``), 1 for what the machine lacks or refused (data that cannot
    be had, a teacher that is not good, a file or folder that cannot be read or written), 130 for Ctrl-C."""
    args = build_parser().parse_args(argv)
    from .data import DataUnavailableError
    from .zoo import BadTeacherError
    try:
        return args.func(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (DataUnavailableError, BadTeacherError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:                      # a folder that cannot be written, a file that cannot be read
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
