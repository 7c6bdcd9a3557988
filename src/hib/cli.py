"""`hib` on the command line: a thin layer over hib.pipeline, hib.train and hib.data.

Every user mistake ends as one line `error: ...` and exit status 2; anything else is a bug.
Besides HibError, that covers bad arguments and the OSErrors a user causes (no space, a
read-only or missing place): see `_user_oserror`.

Under a launcher (`accelerate launch -m hib ...`: hib.distributed) `train`, `score` and
`compare` run data-parallel over its processes, the main one printing and writing; the other
commands refuse to run in several processes.
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
from pathlib import Path

from hib.errors import HibError
from hib.io import WRITE_ERRNOS

USER_ERRNOS = WRITE_ERRNOS | {errno.ENOENT}
DATA_PARALLEL = ("train", "score", "compare")  # the commands several processes share


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line like every other error (not usage + error)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {self.prog}: {message}\n")


def _cmd_synth(args: argparse.Namespace) -> None:
    from hib.data.synth.corpus import SynthConfig, build_corpus, holdout_config

    if args.task != "ks" and args.holdout:
        raise HibError("--holdout is for the keyword corpus (--task ks)")
    if args.task == "asr":
        from hib.data.synth.asr_corpus import ASRSynthConfig, build_asr_corpus

        config = ASRSynthConfig(seed=args.seed)
        print(f"corpus: {build_asr_corpus(Path(args.out), config, workers=args.workers)}")
        return
    if args.task == "ic":
        from hib.data.synth.ic_corpus import ICSynthConfig, build_ic_corpus

        config = ICSynthConfig(seed=args.seed)
        print(f"corpus: {build_ic_corpus(Path(args.out), config, workers=args.workers)}")
        return
    if args.task == "sid":
        from hib.data.synth.sid_corpus import SIDSynthConfig, build_sid_corpus

        config = SIDSynthConfig(seed=args.seed)
        print(f"corpus: {build_sid_corpus(Path(args.out), config, workers=args.workers)}")
        return
    if args.holdout:
        print(f"corpus: {build_corpus(Path(args.out), holdout_config(), workers=args.workers)}")
        return
    out = build_corpus(
        Path(args.out), SynthConfig(n_clips=args.clips, seed=args.seed), workers=args.workers
    )
    print(f"corpus: {out}")


def _cmd_download(args: argparse.Namespace) -> None:
    from hib.data.download import (
        DEFAULT_BASE_URL,
        LIBRISPEECH_URL,
        download_librispeech,
        download_speech_commands,
    )

    source = LIBRISPEECH_URL if args.corpus == "librispeech" else DEFAULT_BASE_URL
    print(f"downloading from {source}: the one hib command that uses the network")
    if args.corpus == "librispeech":
        root = download_librispeech(args.subset, Path(args.dest))
        print(f"librispeech: {root} (split {args.subset})")
        return
    print(f"speech commands: {download_speech_commands(args.version, Path(args.dest))}")


def _cmd_upstream_check(args: argparse.Namespace) -> None:
    from hib.upstream_check import check_upstream

    result = check_upstream(args.spec)
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key}: {value}")


def _cmd_train(args: argparse.Namespace) -> None:
    from hib.config import load_config
    from hib.distributed import world
    from hib.train import train

    config = load_config(args.config, args.overrides)
    out = Path(args.out or Path("runs") / (Path(args.config).stem if args.config else "default"))
    job = world()
    results = train(config, out, resume=args.resume, progress=job.is_main, world=job)
    name = results["metric"]["name"]
    if job.is_main:
        print(f"test {name} {results[name]:.4f}  (run folder: {out})")


def _cmd_convert_state(args: argparse.Namespace) -> None:
    from hib.trainstate import LEGACY_STATE_FILE, convert_legacy_state

    out = convert_legacy_state(Path(args.run_dir))
    print(f"training state: {out} (the old {LEGACY_STATE_FILE} is no longer read)")


def _cmd_eval(args: argparse.Namespace) -> None:
    from hib.pipeline import Run

    run = Run(args.run_dir, progress=not args.json)
    if args.protocol:
        run.config.data.protocol = args.protocol
    names = run.task.split_names()
    if names is not None and args.split not in names:
        raise HibError(f"--split {args.split!r}: task {run.task.name} has {', '.join(names)}")
    data = Path(args.data) if args.data else run.splits.root
    dataset = run.task.read_split(data, args.split)
    if len(dataset) == 0:  # a metric of nothing (NaN) is not an answer
        raise HibError(f"{data}: split {args.split!r} has no clips")
    mask = run.mask_for(args.method, args.ratio) if args.method else None
    result = run.evaluate(dataset, mask, progress=not args.json).to_dict()
    if args.json:
        print(json.dumps(result))
        return
    name = run.metric.name
    print(f"{name} {result[name]:.4f} on {result['n']} clips ({data}, {args.split})")
    for label, value in result.get("per_class", {}).items():
        print(f"  {label:>10s} {value:.4f}")


def _cmd_score(args: argparse.Namespace) -> None:
    import inspect

    from hib.distributed import world
    from hib.methods import method_class
    from hib.pipeline import Run

    run = Run(args.run_dir, progress=not args.json, world=world())
    options = {"clips": run.task.score_clips if args.clips is None else args.clips}
    if args.beta is not None:
        if "beta" not in inspect.signature(method_class(args.method)).parameters:
            raise HibError(f"--beta: method {args.method} has no beta")
        options["beta"] = args.beta
    scores = run.score(args.method, **options)
    if not run.world.is_main:
        return
    if args.json:
        print(json.dumps({"method": args.method, "scores": scores.tolist()}))
        return
    print(f"{args.method} scores (layers x heads, higher = more important):")
    for layer, row in enumerate(scores.tolist()):
        print(f"  layer {layer}: " + " ".join(f"{v:8.3f}" for v in row))


def _cmd_prune(args: argparse.Namespace) -> None:
    from hib.pipeline import Run
    from hib.prune import parse_ratios

    if args.tasks is not None:
        _cmd_joint_prune(args)
        return
    if args.combine:
        raise HibError("--combine is for pruning several tasks at once (--tasks)")
    run = _compensating(Run(args.run_dir), args)
    if args.fill:
        run.config.heads.fill = args.fill
    refit = parse_ratios(args.refit_ratios) if args.refit else None
    ratios = parse_ratios("0:1:0.05" if args.ratios is None else args.ratios)
    record = run.prune(
        args.method,
        ratios,
        args.min_heads_per_layer,
        args.iterative,
        refit,
        args.compensate,
        rearrange=args.rearrange,
    )
    name = run.metric.name
    curves = (
        ("pruned", "curve"),
        ("refit", "curve_refit"),
        (args.compensate, "curve_compensated"),
        ("rearranged", "curve_rearranged"),
    )
    for label, key in curves:
        for point in record.get(key, []):
            print(
                f"  {label:<6s} {point['ratio']:.2f} ({point['pruned']:3d} heads): "
                f"{name} {point[name]:.4f}"
            )


def _cmd_joint_prune(args: argparse.Namespace) -> None:
    """hib prune DIR --tasks a,b: one mask for the runs DIR/a, DIR/b (hib.joint)."""
    from hib.joint import DEFAULT_RATIOS, joint_prune
    from hib.prune import parse_ratios

    single = {
        "--fill": args.fill,
        "--iterative": args.iterative,
        "--refit": args.refit,
        "--min-heads-per-layer": args.min_heads_per_layer,
        "--compensate": args.compensate,
        "--rearrange": args.rearrange,
    }
    for flag, given in single.items():
        if given:
            raise HibError(f"{flag} prunes one run; it does not go with --tasks")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if len(set(tasks)) < 2 or len(set(tasks)) < len(tasks):
        raise HibError(f"--tasks {args.tasks!r}: name at least 2 different tasks, e.g. ks,asr")
    root = Path(args.run_dir)
    ratios = list(DEFAULT_RATIOS) if args.ratios is None else parse_ratios(args.ratios)
    combine = args.combine or "validated"
    record = joint_prune({t: root / t for t in tasks}, root, args.method, ratios, combine)
    chosen = " (chosen on validation)" if "validation" in record else ""
    print(
        f"{args.method} scores of {', '.join(tasks)} combined by the {record['combine']}{chosen}:"
    )
    print(f"  {'task':>8s} {'metric':>8s} {'ratio':>5s} {'joint':>8s} {'own':>8s} kept share")
    for task in tasks:
        name = record["metrics"][task]["name"]
        for p in record["points"][task]:
            share = "-" if p["kept_share"] is None else f"{100 * p['kept_share']:.1f} %"
            print(
                f"  {task:>8s} {name:>8s} {p['ratio']:5.2f} {p['joint']:8.4f} {p['own']:8.4f} "
                f"{share:>10s}"
            )
    print(f"results: {root / 'results.json'} (joint)  report: {root / 'report.html'}")


def _cmd_compare(args: argparse.Namespace) -> None:
    from hib.compare import SWEEP, compare, format_table
    from hib.distributed import world
    from hib.pipeline import Run
    from hib.prune import parse_ratios

    methods = None if args.methods == "all" else args.methods.split(",")
    ratios = SWEEP if args.ratios is None else parse_ratios(args.ratios)
    run = _compensating(Run(args.run_dir, world=world()), args)
    table = compare(
        run,
        methods,
        seeds=args.seeds,
        clips=args.clips,
        ratios=ratios,
        min_steps=args.min_steps,
        compensate=args.compensate,
        method_options=_method_options(args.option),
    )
    if run.world.is_main:
        print(format_table(table, run.metric))


def _method_options(items: list[str]) -> dict[str, dict]:
    """`--option attattr.steps=10 ...` -> {"attattr": {"steps": 10}}: dotted overrides, as
    for configs (hib.config.parse_overrides), with a method where a config has a section."""
    from hib.config import parse_overrides

    for item in items:
        key, sep, _ = item.partition("=")
        method, dot, name = key.partition(".")
        if not (sep and dot and method and name):
            raise HibError(
                f"--option {item!r}: expected METHOD.OPTION=VALUE, e.g. attattr.steps=10"
            )
    return parse_overrides(items)


def _cmd_export(args: argparse.Namespace) -> None:
    from hib.pipeline import Run

    out = _compensating(Run(args.run_dir), args).export(
        args.method,
        args.ratio,
        Path(args.out),
        refit=args.refit,
        compensate=args.compensate,
        rearrange=args.rearrange,
    )
    print(f"pruned model: {out}  (hib eval {out} --data DIR)")


def _compensating(run, args: argparse.Namespace):
    """The run with the calibration clip count of --compensate-clips."""
    run.compensate_clips = args.compensate_clips
    return run


def _clips(text: str) -> int:
    """--compensate-clips: a positive count, checked before any run is loaded."""
    from hib.compensate import check_clips

    try:
        return check_clips(int(text))
    except (ValueError, HibError) as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: a positive number of clips") from exc


def _add_compensate(parser: argparse.ArgumentParser, what: str) -> None:
    from hib.compensate import DEFAULT_CLIPS, KINDS

    parser.add_argument(
        "--compensate",
        choices=KINDS,
        help=f"also {what} after a least-squares repair of each pruned layer: lsq, per-head "
        "scales (Kwon et al. 2022); proj, the kept heads' out_proj columns; ffn, proj and each "
        "layer's feed-forward output projection, pre-LN layers only (docs/method.md)",
    )
    parser.add_argument(
        "--compensate-clips",
        type=_clips,
        default=DEFAULT_CLIPS,
        help=f"training clips the repair is fitted on (default {DEFAULT_CLIPS})",
    )


def _add_rearrange(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--rearrange",
        action="store_true",
        help=f"fisher only: {what} with each layer's kept heads re-chosen, as many per layer, "
        "to minimise the layer's Fisher quadratic form (Kwon et al. 2022's mask "
        "rearrangement; heads only, where they rearrange FFN neurons too)",
    )


def _cmd_bench_prune(args: argparse.Namespace) -> None:
    from hib.pipeline import Run

    result = Run(args.run_dir, progress=False).bench(
        args.method, args.ratio, batch=args.batch, repeats=args.repeats
    )
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:>24s}: {value:.6g}")


def _cmd_report(args: argparse.Namespace) -> None:
    from hib.report import write_report

    print(f"report: {write_report(Path(args.run_dir))}")


def _cmd_compare_tasks(args: argparse.Namespace) -> None:
    from hib.cross_task import compare_tasks

    record = compare_tasks([Path(d) for d in args.run_dirs], Path(args.out))
    for method, rec in record["methods"].items():
        print(f"{method}: Spearman between tasks {', '.join(rec['tasks'])}")
        for task, row in zip(rec["tasks"], rec["spearman"], strict=True):
            print(f"  {task:>8s} " + " ".join(f"{v:6.2f}" for v in row))
    print(f"report: {Path(args.out) / 'report.html'}")


def _cmd_demo(args: argparse.Namespace) -> None:
    from hib.demo import run_demo

    extra = {} if args.upstream is None else {"upstream": args.upstream}
    run_demo(Path(args.out), quick=args.quick, tasks=args.tasks, **extra)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="build or fetch a corpus")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    synth = data_sub.add_parser("synth", help="synthesize an offline corpus")
    synth.add_argument(
        "--task",
        default="ks",
        choices=["ks", "asr", "ic", "sid"],
        help="ks: Speech Commands layout; asr: LibriSpeech layout (train/dev/test); "
        "ic: Fluent Speech Commands layout; sid: VoxCeleb1 layout (iden_split.txt)",
    )
    synth.add_argument("--out", required=True)
    synth.add_argument("--clips", type=int, default=10000, help="keyword clips (--task ks)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--workers", type=int, default=2)
    synth.add_argument(
        "--holdout", action="store_true", help="voices the default never uses; all clips in test"
    )
    synth.set_defaults(func=_cmd_synth)
    download = data_sub.add_parser("download", help="fetch the official archives")
    download.add_argument("corpus", choices=["speech-commands", "librispeech"])
    download.add_argument("--version", default="0.01", choices=["0.01", "0.02"])
    download.add_argument("--subset", default="test-clean", help="LibriSpeech subset")
    download.add_argument("--dest", required=True)
    download.set_defaults(func=_cmd_download)

    train = sub.add_parser(
        "train", help="train the task's downstream (asr: create the run of the pretrained model)"
    )
    train.add_argument(
        "--config", help="YAML config file, or a packaged one by name: demo, paper/ks-wav2vec2-base"
    )
    train.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.epochs=2")
    train.add_argument("--out", help="run folder (default runs/<config name>)")
    train.add_argument(
        "--resume", action="store_true", help="continue from train_state.safetensors"
    )
    train.set_defaults(func=_cmd_train)

    convert = sub.add_parser(
        "convert-state",
        help="convert an old train_state.pt (a pickle) to safetensors, for a trusted run folder",
    )
    convert.add_argument("run_dir")
    convert.set_defaults(func=_cmd_convert_state)

    ev = sub.add_parser("eval", help="a run's metric (accuracy, WER) on a corpus split")
    ev.add_argument("run_dir")
    ev.add_argument("--data", help="a folder in the task's layout (default: the run's corpus)")
    ev.add_argument(
        "--split",
        default="test",
        help="ks: train, validation or test; asr: any split folder (test-clean, test-real ...)",
    )
    ev.add_argument("--protocol", choices=["lists", "superb"], help="ks: default the run's")
    ev.add_argument("--method", help="evaluate with this method's pruning ...")
    ev.add_argument("--ratio", type=float, default=0.0, help="... at this pruned fraction")
    ev.add_argument("--json", action="store_true", help="one JSON object on stdout")
    ev.set_defaults(func=_cmd_eval)

    score = sub.add_parser("score", help="score every head with a method")
    score.add_argument("run_dir")
    score.add_argument("--method", default="hib")
    score.add_argument("--beta", type=float, help="HIB beta (default: chosen on validation)")
    score.add_argument(
        "--clips", type=int, help="training clips to score on (default: ks 1000, asr 200)"
    )
    score.add_argument(
        "--json", action="store_true", help='only {"method", "scores": [[...]]} on stdout'
    )
    score.set_defaults(func=_cmd_score)

    prune = sub.add_parser("prune", help="prune by a method's scores and measure the metric")
    prune.add_argument("run_dir", help="a run folder; with --tasks, the folder of the runs")
    prune.add_argument("--method", default="hib")
    prune.add_argument(
        "--ratios",
        help="start:stop:step or a,b,c (default 0:1:0.05; with --tasks 0.1,0.2,...,0.6)",
    )
    prune.add_argument(
        "--tasks",
        help="comma-separated tasks: prune the runs RUN_DIR/<task> by one joint mask",
    )
    prune.add_argument(
        "--combine",
        choices=["validated", "max", "power4", "power2", "mean"],
        help="with --tasks: how the tasks' score ranks combine (default validated: the power "
        "mean of the ranks that serves the worst-served task best on validation, hib.joint)",
    )
    prune.add_argument("--fill", choices=["mean", "zero"], help="default: the run's heads.fill")
    prune.add_argument("--min-heads-per-layer", type=int, default=0)
    prune.add_argument("--iterative", action="store_true", help="re-score after each step")
    prune.add_argument("--refit", action="store_true", help="also re-fit the task head")
    prune.add_argument("--refit-ratios", default="0.2,0.4,0.6")
    _add_compensate(prune, "measure each mask (a separate curve_compensated)")
    _add_rearrange(prune, "also measure every mask (a separate curve_rearranged)")
    prune.set_defaults(func=_cmd_prune)

    comp = sub.add_parser("compare", help="every method, same heads, data and protocol")
    comp.add_argument("run_dir")
    comp.add_argument("--methods", default="all", help="'all' or a comma list")
    comp.add_argument("--seeds", type=int, default=3)
    comp.add_argument(
        "--clips", type=int, help="training clips per scoring (default: ks 500, asr 200)"
    )
    comp.add_argument(
        "--ratios",
        help="pruned fractions of the curves: START:STOP:STEP or a comma list "
        "(default 0:1:0.05; the demo's plans use coarser grids, hib/demo.py)",
    )
    comp.add_argument(
        "--min-steps",
        type=int,
        help="the fitted methods' step floor, the same for every method (default: theirs)",
    )
    comp.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="METHOD.OPTION=VALUE",
        help="one method's own option, e.g. attattr.steps=10 (repeatable)",
    )
    _add_compensate(comp, "sweep every method's masks (an AUC column of its own)")
    comp.set_defaults(func=_cmd_compare)

    export = sub.add_parser("export", help="write a physically pruned model")
    export.add_argument("run_dir")
    export.add_argument("--method", default="hib")
    export.add_argument("--ratio", type=float, required=True)
    export.add_argument("--refit", action="store_true", help="re-fit the task head first")
    _add_compensate(export, "write the pruned model")
    _add_rearrange(export, "write the pruned model")
    export.add_argument("--out", required=True)
    export.set_defaults(func=_cmd_export)

    bench = sub.add_parser("bench", help="measure what pruning buys")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    bench_prune = bench_sub.add_parser("prune", help="pruned vs unpruned: diff, params, latency")
    bench_prune.add_argument("run_dir")
    bench_prune.add_argument("--method", default="hib")
    bench_prune.add_argument("--ratio", type=float, required=True)
    bench_prune.add_argument("--batch", type=int, default=16)
    bench_prune.add_argument("--repeats", type=int, default=30)
    bench_prune.add_argument("--json", action="store_true")
    bench_prune.set_defaults(func=_cmd_bench_prune)

    upstream = sub.add_parser("upstream", help="check a pretrained model before using it")
    upstream_sub = upstream.add_subparsers(dest="upstream_command", required=True)
    check = upstream_sub.add_parser(
        "check", help="load it, run a random 1 s input, compare masking with head removal"
    )
    check.add_argument(
        "spec", help="whisper-tiny.en, whisper-base, a saved checkpoint folder, or a hub id"
    )
    check.add_argument("--json", action="store_true", help="one JSON object on stdout")
    check.set_defaults(func=_cmd_upstream_check)

    report = sub.add_parser("report", help="write report.html and PNGs from results.json")
    report.add_argument("run_dir")
    report.set_defaults(func=_cmd_report)

    tasks = sub.add_parser("compare-tasks", help="several runs' head scores side by side")
    tasks.add_argument("run_dirs", nargs="+")
    tasks.add_argument("--out", required=True)
    tasks.set_defaults(func=_cmd_compare_tasks)

    demo = sub.add_parser("demo", help="the whole job on the embedded default")
    demo.add_argument("--out", default="runs/demo")
    demo.add_argument("--quick", action="store_true", help="a tiny smoke run (minutes)")
    demo.add_argument(
        "--tasks",
        type=_demo_tasks,
        default="ks,asr,sid,ic",
        help="comma-separated tasks, in order (default: ks,asr,sid,ic)",
    )
    demo.add_argument(
        "--upstream",
        help="a packaged Whisper: whisper-tiny.en (default) or whisper-base (`make whisper-base`)",
    )
    demo.set_defaults(func=_cmd_demo)
    return parser


def _demo_tasks(text: str) -> tuple[str, ...]:
    from hib.demo import TASKS

    tasks = tuple(t.strip() for t in text.split(",") if t.strip())
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks or len(set(tasks)) != len(tasks):
        raise argparse.ArgumentTypeError(f"{text!r}: name each of {', '.join(TASKS)} at most once")
    return tasks


def _check_processes(command: str) -> None:
    """Several processes (a launcher's) for a data-parallel command, or one line; the main
    process says how many, so a launch that started only one shows."""
    from hib.distributed import world

    job = world()
    if job.size == 1:
        return
    if command not in DATA_PARALLEL:
        raise HibError(
            f"hib {command} runs in one process; under a launcher run {', '.join(DATA_PARALLEL)}"
        )
    if job.is_main:
        print(f"hib {command}: data-parallel over {job.size} processes", file=sys.stderr)


def _user_oserror(exc: OSError) -> str | None:
    """One line for an OSError the user caused (and can fix); None for any other (a bug)."""
    if exc.errno not in USER_ERRNOS:
        return None
    return f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc.strerror)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a bad argument (already reported in one line)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        _check_processes(args.command)
        args.func(args)
    except HibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        line = _user_oserror(exc)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
