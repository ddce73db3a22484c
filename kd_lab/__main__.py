"""Command line: ``python -m kd_lab {data,teacher,run,methods,bench,compare} ...`` (``--help`` on each)."""
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


def cmd_data(args) -> int:
    from . import data
    root = data.fetch(args.name, verbose=True)
    train, test = data.load(args.name)
    print(f"{args.name}: {len(train)} train / {len(test)} test images of {tuple(train.x.shape[1:])} in {root}")
    return 0


def cmd_teacher(args) -> int:
    from . import zoo
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
    from .methods import method_info
    info = method_info(method)
    texts = _parse_sets(args.set)
    options = {k: getattr(args, k) for k in ("temperature", "alpha") if getattr(args, k) is not None}
    dropped = [k for k in [*options, *texts] if k not in info.defaults]
    if dropped:
        raise ValueError(f"method {method!r} has no option(s) {dropped}; allowed: {sorted(info.defaults) or 'none'}")
    typed = {k: _option_value(k, v, info.defaults[k], info.knobs.get(k)) for k, v in texts.items()}
    return {**options, **typed}


def cmd_run(args) -> int:
    from .experiments import Setting, run_method
    options = _split_method_options(args.method, args)
    overrides = {k: getattr(args, k) for k in ("dataset", "epochs", "batch_size", "lr", "student", "test_size")
                 if getattr(args, k) is not None}
    if args.labeled is not None:
        overrides["labeled"] = None if args.labeled == "all" else int(args.labeled)
    setting = Setting.default(**overrides)
    histories = []
    for seed in args.seeds:
        h = run_method(args.method, setting, seed=seed, device=args.device, progress=not args.json, **options)
        histories.append(h)
        if args.json:
            print(json.dumps({"method": args.method, "seed": seed, "accuracy": h.test_acc,
                              "images_per_s": h.images_per_s, "wall_s": h.wall_s, "device": h.device,
                              "status": h.status, "final_loss_terms": h.final_terms(), "options": options,
                              "config": h.config, "setting": vars(setting),
                              "last_epoch": h.epochs[-1] if h.epochs else None}, default=str), flush=True)
    if not args.json:
        _print_run_table(args.method, histories, setting)
    return 0


def _print_run_table(method, histories, setting) -> None:
    from .experiments import summarize
    print(f"\n{method} on {setting.dataset}: {setting.labeled or 'all'} labeled, {setting.epochs} epochs, "
          f"student {setting.student}")
    print(f"{'seed':>4} | {'test acc %':>10} | {'images/s':>9} | {'wall s':>7} | final loss terms")
    for h in histories:
        terms = ", ".join(f"{k}={v:.3f}" for k, v in h.final_terms().items())
        print(f"{h.seed:>4} | {100 * (h.test_acc or 0):>10.2f} | {h.images_per_s or 0:>9.0f} | {h.wall_s:>7.1f} "
              f"| {terms}")
    s = summarize(histories)
    print(f"mean ± std over {s['n']} seed(s): {s['text']} %")


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
    import signal
    from dataclasses import replace

    from . import compare
    from .experiments import Setting
    from .train import quick_mode
    overrides = {k: getattr(args, k) for k in ("dataset", "epochs", "batch_size", "lr", "student", "test_size",
                                                "steps") if getattr(args, k) is not None}
    setting = Setting.default(**overrides)
    setting = replace(setting, eval_every=args.eval_every or setting.epochs)
    out = Path(args.out) if args.out else compare.default_out(setting.dataset, quick_mode())
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)    # kill: stop like Ctrl-C, the CSV stays valid
    try:
        rows = compare.run_comparison(args.methods, args.seeds, args.labeled, setting, args.device, out,
                                      resume=args.resume)
    except KeyboardInterrupt:
        print(f"interrupted; finished runs are in {out}: run the same command again to resume", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    every = compare.current_rows(compare.read_rows(out), rows[0]["setting_key"]) if rows else []
    print(compare.write_report(every, out.with_suffix(".md"), baseline=args.baseline))   # earlier runs too
    print(f"\nrows: {out}; table: {out.with_suffix('.md')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m kd_lab", description="kd_lab: knowledge distillation course tools")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("data", help="fetch and check a data set")
    d.add_argument("name", nargs="?", default="fashion-mnist")
    d.set_defaults(func=cmd_data)

    t = sub.add_parser("teacher", help="get (cached) or train the teacher of a data set")
    t.add_argument("--dataset", default="fashion-mnist")
    t.add_argument("--recipe", default=None, help="full or quick (default: full, quick in quick mode without weights)")
    t.add_argument("--device", default="auto")
    t.add_argument("--amp", default="auto", help="auto (bf16 on CUDA), bf16, or off")
    t.add_argument("--retrain", action="store_true", help="ignore the cache and the shipped weights")
    t.add_argument("--ship", action="store_true", help="copy the weights into kd_lab/weights/ (maintainers)")
    t.set_defaults(func=cmd_teacher)

    from .methods import method_names
    r = sub.add_parser("run", help="train a student with a method over seeds and print a table")
    r.add_argument("method", help=f"one of {', '.join(method_names())} (options: python -m kd_lab methods)")
    r.add_argument("--dataset")
    r.add_argument("--epochs", type=int)
    r.add_argument("--labeled", help="labeled images (class-balanced) or 'all'")
    r.add_argument("--seeds", type=int, nargs="+", default=[0])
    r.add_argument("--device", default="auto")
    r.add_argument("--student", help="student preset")
    r.add_argument("--batch-size", type=int)
    r.add_argument("--lr", type=float)
    r.add_argument("--test-size", type=int, help="evaluate on the first N test images")
    r.add_argument("--temperature", type=float)
    r.add_argument("--alpha", type=float)
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other method option, typed like its default (python -m kd_lab methods lists them)")
    r.add_argument("--json", action="store_true", help="print one JSON record per seed")
    r.set_defaults(func=cmd_run)

    m = sub.add_parser("methods", help="every registered method: lesson, teacher, options and defaults")
    m.set_defaults(func=cmd_methods)

    b = sub.add_parser("bench", help="images/s of a KD epoch against a tutorial-style reference loop")
    b.add_argument("--device", default="auto")
    b.add_argument("--images", type=int, default=None,
                   help="training images per epoch (default: all on GPU, 6000 on CPU)")
    b.add_argument("--teacher-recipe", default=None, help="also time training this teacher recipe (full or quick)")
    b.add_argument("--batch-size", type=int, default=128, help="batch size of both loops")
    b.add_argument("--methods", nargs="?", const="all", default=None, metavar="M1,M2",
                   help="instead: images/s of each method's training step (default all), ratio to the first")
    b.set_defaults(func=cmd_bench)

    c = sub.add_parser("compare", help="every method on one budget over seeds: CSV of runs, Markdown table")
    c.add_argument("--methods", default="all", help="comma-separated methods (default: all registered)")
    c.add_argument("--seeds", type=int, default=3, help="number of seeds, 0..N-1 (default 3)")
    c.add_argument("--labeled", default="1000", help="labeled images, 'all', or a comma list of sizes")
    c.add_argument("--epochs", type=int)
    c.add_argument("--eval-every", type=int, help="measure test accuracy every N epochs (default: last only)")
    c.add_argument("--steps", type=int, help="a budget in optimizer steps for every method instead of --epochs")
    c.add_argument("--dataset")
    c.add_argument("--student", help="student preset")
    c.add_argument("--batch-size", type=int)
    c.add_argument("--lr", type=float)
    c.add_argument("--test-size", type=int, help="evaluate on the first N test images")
    c.add_argument("--device", default="auto")
    c.add_argument("--out", help="CSV of runs (default results/compare-<dataset>.csv; -quick in quick mode)")
    c.add_argument("--baseline", default="scratch", help="method the table's Δ column compares with")
    resume = c.add_mutually_exclusive_group()
    resume.add_argument("--resume", dest="resume", action="store_true", default=True,
                        help="skip runs already in the CSV with status ok (default)")
    resume.add_argument("--fresh", dest="resume", action="store_false",
                        help="run everything again; new rows supersede the old ones")
    c.set_defaults(func=cmd_compare)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
