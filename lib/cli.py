"""Command line: the same engine as the app (`python -m lib ...`).

Train on a bigger machine, then browse the runs in the app. Errors are one
line on stderr with a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from lib.data import catalog, datasets
from lib.execution import pipeline
from lib.models import architectures, exports
from lib.store import backend, runs
from lib.training import codegen, hardware, presets
from lib.training.config import (
    DEFAULT_LEARNING_RATES,
    LR_SCHEDULES,
    OPTIMIZERS,
    PRECISIONS,
    TrainConfig,
    config_defaults,
    default_learning_rate,
)

EXIT_USAGE, EXIT_FAILED = 2, 1
# `export --format`: what each writes, named <run id><suffix> in a folder.
EXPORT_SUFFIXES = {"keras": ".keras", "savedmodel": "-savedmodel.zip", "tflite": ".tflite",
                   "tflite-quant": "-quant.tflite", "onnx": ".onnx", "bundle": ".studio.zip"}
EXPORT_FORMATS = tuple(EXPORT_SUFFIXES)
TENSORFLOW_COMMANDS = {"train", "evaluate", "predict", "inside"}  # the rest never load it (import: its child does)
BAR_WIDTH = 30
BAR_INTERVAL_S = 0.1  # redraw the terminal bar at most ten times a second
DIVERGED = "diverged"  # a run's meta status when its loss exploded in training (lib.training.loop)
NAN_ANSWER = "the model answers NaN: its weights are no longer numbers"


class CliError(Exception):
    """A problem the user can fix; printed as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise CliError(f"{message} (see `python -m {self.prog} --help`)")  # prog: "lib" or "lib train"


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            parser.print_help()
            return EXIT_USAGE
        if getattr(args, "store", None):  # the run store for this command: runs made here appear in the app
            os.environ[backend.STORE_ENV] = args.store
        if args.command in TENSORFLOW_COMMANDS:
            hardware.import_tensorflow_quietly()  # stderr keeps to our one-line messages
        return args.handler(args)
    except CliError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, LookupError, RuntimeError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - the CLI promises one line, never a traceback
        print(f"error: unexpected {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILED


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lib", description="MNIST Studio engine: zoo, train, runs, evaluate, predict, inside, export, import.")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)

    zoo = commands.add_parser("zoo", help="list the model zoo")
    zoo.add_argument("--json", action="store_true", help="one JSON list on stdout")
    zoo.set_defaults(handler=cmd_zoo)

    listing = commands.add_parser("presets", help="list the tutorials' recipes (see the Lessons page)")
    listing.add_argument("--json", action="store_true", help="one JSON list on stdout")
    listing.set_defaults(handler=cmd_presets)

    train = commands.add_parser("train", help="train a model and save it as a run")
    _add_train_options(train)
    _add_dirs(train)
    train.add_argument("--json", action="store_true", help="last stdout line is a JSON summary")
    train.set_defaults(handler=cmd_train)

    code = commands.add_parser("code", help="print a runnable Keras script for a preset or settings")
    _add_train_options(code)
    code.set_defaults(handler=cmd_code)

    listing = commands.add_parser("runs", help="list saved runs")
    _add_dirs(listing, data=False)
    listing.add_argument("--json", action="store_true", help="one object per run; its 'scores' is 'measured' "
                         "(trained or scored here) or 'claimed' (imported, not verified)")
    listing.set_defaults(handler=cmd_runs)

    evaluate = commands.add_parser("evaluate", help="score a saved run on its test set")
    evaluate.add_argument("run", help="run id, or 'default' for the bundled model")
    _add_dirs(evaluate)
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(handler=cmd_evaluate)

    predict = commands.add_parser("predict", help="classify image files as the Draw page does")
    predict.add_argument("--model", default="default", help="run id, a run folder or .keras file, or 'default'")
    predict.add_argument("images", nargs="+", help="PNG or JPEG files")
    _add_dirs(predict, data=False)
    predict.add_argument("--json", action="store_true", help="one JSON line per image")
    predict.set_defaults(handler=cmd_predict)

    inside = commands.add_parser("inside", help="look inside a model for images: layers, prediction, saliency")
    inside.add_argument("--model", default="default", help="run id, a run folder or .keras file, or 'default'")
    inside.add_argument("images", nargs="+", metavar="image", help="PNG or JPEG files (one report each)")
    inside.add_argument("--target", type=int, default=None, help="class to explain (default: the predicted one)")
    _add_dirs(inside, data=False)
    inside.add_argument("--json", action="store_true", help="one JSON line per image")
    inside.set_defaults(handler=cmd_inside)

    export = commands.add_parser("export", help="write a run as one bundle file, or its model in another format")
    export.add_argument("run", help="run id, or 'default' for the bundled model")
    export.add_argument("path", type=Path, help="the file to write, or a folder for <run id><suffix of the format>")
    export.add_argument("--format", choices=EXPORT_FORMATS, default="bundle",
                        help="bundle (model, history, metadata; imports back), keras, or a model checked against "
                             "Keras on 100 test images: savedmodel (zip), tflite, tflite-quant, onnx")
    _add_dirs(export)
    export.set_defaults(handler=cmd_export)

    importing = commands.add_parser("import", help="add a run bundle or a bare .keras model as a new run")
    importing.add_argument("path", type=Path, help="a .studio.zip bundle or a .keras file")
    importing.add_argument("--dataset", default=None,
                           help="for a bare .keras model: the dataset to check it against and score it on")
    _add_dirs(importing)
    importing.add_argument("--json", action="store_true", help="one JSON line: the new run's summary")
    importing.set_defaults(handler=cmd_import)
    return parser


def _add_train_options(train) -> None:
    """The training settings, with TrainConfig's defaults and the training module's choices."""
    default = config_defaults()
    train.add_argument("--preset", default=None,
                       help="a tutorial recipe (see `presets`); only --limit, --epochs, --seed and --name change it")
    train.add_argument("--dataset", default=default["dataset"])
    train.add_argument("--arch", default=default["arch"], help="a zoo name (see `zoo`)")
    train.add_argument("--epochs", type=int, default=_Default(default["epochs"]))
    train.add_argument("--batch-size", type=int, default=default["batch_size"])
    train.add_argument("--optimizer", choices=OPTIMIZERS, default=default["optimizer"])
    rates = ", ".join(f"{name} {rate:g}" for name, rate in DEFAULT_LEARNING_RATES.items())
    train.add_argument("--lr", type=float, default=None, help=f"learning rate (default by optimizer: {rates})")
    train.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=default["lr_schedule"])
    train.add_argument("--validation-split", type=float, default=default["validation_split"])
    train.add_argument("--limit", type=int, default=default["limit"], help="train on a stratified sample of N images")
    train.add_argument("--seed", type=int, default=default["seed"])
    train.add_argument("--no-normalize", action="store_true", help="feed raw 0..255 pixels")
    train.add_argument("--one-hot", action="store_true", help="one-hot labels with categorical crossentropy")
    train.add_argument("--augment", action="store_true", help="shifts, rotation, zoom, stroke width")
    train.add_argument("--target-accuracy", type=float, default=None, help="stop once val_accuracy reaches this (0-1)")
    train.add_argument("--patience", type=int, default=default["early_stopping_patience"],
                       help="early stopping patience in epochs (0 = off)")
    train.add_argument("--precision", choices=PRECISIONS, default=default["precision"])
    train.add_argument("--name", default=default["name"], help="display name of the run")


def _add_dirs(parser, data: bool = True) -> None:
    if data:
        parser.add_argument("--data-dir", type=Path, default=None, help="default: $MNIST_STUDIO_DATA_DIR or data/")
    parser.add_argument("--runs-dir", type=Path, default=None, help="default: $MNIST_STUDIO_RUNS_DIR or runs/")
    parser.add_argument("--store", default=None,
                        help="where runs live: a folder or s3://bucket/prefix, gs://... (default: $MNIST_STUDIO_STORE)")


def cmd_zoo(args) -> int:
    rows = []
    for arch in architectures.ZOO.values():
        rows.append(
            {
                "name": arch.name,
                "title": arch.title,
                "family": arch.family,
                "params": architectures.count_params(arch.layers, (28, 28, 1), 10),
                "layers": [dict(layer) for layer in arch.layers],
                "tutorial": arch.tutorial,
                "description": arch.description,
            }
        )
    if args.json:
        print(json.dumps(rows))
    else:
        for row in rows:
            print(f"{row['name']:<18} {row['params']:>9,} params  {row['title']}")
    return 0


class _Default(int):
    """An option's default value, told apart from the same number typed by the user."""


# Settings a preset fixes: giving one of these with --preset is a mistake worth saying.
PRESET_FIXED = ("dataset", "arch", "batch_size", "optimizer", "lr", "lr_schedule", "validation_split",
                "no_normalize", "one_hot", "augment", "target_accuracy", "patience", "precision")


def config_from_args(args) -> TrainConfig:
    """The TrainConfig that `train` and `code` use: a preset's, or one built from the options."""
    if args.preset is not None:
        preset = presets.get_preset(args.preset)
        defaults = _build_parser().parse_args([args.command])
        own = {"dataset": preset.dataset, "arch": preset.arch}  # repeating the preset's own value is no clash
        clashing = [f"--{dest.replace('_', '-')}" for dest in PRESET_FIXED
                    if getattr(args, dest) != getattr(defaults, dest) and getattr(args, dest) != own.get(dest)]
        if clashing:
            raise CliError(f"--preset {preset.name} sets {', '.join(clashing)} itself; "
                           "only --limit, --epochs, --seed and --name change a preset")
        overrides = {"seed": args.seed, **({"name": args.name} if args.name else {})}
        given_epochs = None if isinstance(args.epochs, _Default) else args.epochs
        return preset.config(limit=args.limit, epochs=given_epochs, **overrides)
    if args.arch not in architectures.ZOO:
        raise CliError(f"Unknown architecture: {args.arch!r}. Known: {', '.join(architectures.ZOO)}.")
    learning_rate = args.lr if args.lr is not None else default_learning_rate(args.optimizer)
    return TrainConfig(
        dataset=args.dataset,
        arch=args.arch,
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        learning_rate=learning_rate,
        lr_schedule=args.lr_schedule,
        validation_split=args.validation_split,
        normalize=not args.no_normalize,
        label_encoding="one_hot" if args.one_hot else "sparse",
        seed=args.seed,
        target_metric="val_accuracy" if args.target_accuracy is not None else "",
        target_value=args.target_accuracy or 0.0,
        early_stopping_patience=args.patience,
        augment=args.augment,
        precision=args.precision,
        limit=args.limit,
        name=args.name,
    )


def cmd_presets(args) -> int:
    measured = presets.measured_results()
    rows = [{**preset.to_dict(), "measured": measured.get(preset.name)} for preset in presets.PRESETS.values()]
    if args.json:
        print(json.dumps(rows))
    else:
        for row in rows:
            lessons = ", ".join(row["lessons"]) or "-"
            reported = row["reported"]["text"] if row["reported"] else ""
            print(f"{row['name']:<26} lesson {lessons:<6} {row['arch']:<16} {reported}")
    return 0


def cmd_code(args) -> int:
    print(codegen.script_for(config_from_args(args)), end="")
    return 0


def cmd_train(args) -> int:
    config = config_from_args(args)
    try:  # a file that is there but unusable says why (InvalidDataset), not "unknown"
        catalog.get_info(config.dataset, args.data_dir, datasets.uploads_dir(args.runs_dir))
    except datasets.InvalidDataset:
        raise
    except ValueError as unknown:
        raise CliError(str(unknown)) from None
    bar = _ProgressBar(sys.stderr)
    run, result = pipeline.train_and_save(
        config, data_dir=args.data_dir, runs_dir=args.runs_dir, on_progress=bar.update
    )
    bar.close()
    summary = {
        "run_id": run.run_id,
        "status": result.status,
        "reason": result.stop_reason,
        "test_accuracy": result.test_accuracy,
        "test_loss": result.test_loss,
        "seconds": round(result.seconds, 2),
        "samples_per_s": round(result.samples_per_s, 1),
        "params": result.params,
        "precision": result.precision,
        "epochs_completed": result.epochs_trained,
        "path": str(run.path),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        accuracy = "n/a" if result.test_accuracy is None else f"{result.test_accuracy:.2%}"
        print(
            f"{result.status}: run {run.run_id} · test accuracy {accuracy} · "
            f"{result.seconds:.1f} s · {result.samples_per_s:,.0f} images/s · precision {result.precision}\n"
            f"{result.stop_reason}\nsaved to {run.path}"
        )
    return 0 if result.status in ("finished", "stopped") else EXIT_FAILED  # diverged: no usable model


def cmd_runs(args) -> int:
    found, damaged = runs.list_runs(args.runs_dir)
    rows = [runs.summary(run) for run in found]
    if args.json:
        print(json.dumps(rows))
    else:
        for row in rows:
            accuracy = "   n/a" if row["test_accuracy"] is None else f"{row['test_accuracy']:6.2%}"
            claimed = f"  ({runs.CLAIMED_NOTE})" if row["scores"] == runs.CLAIMED and row["test_accuracy"] is not None else ""
            print(f"{row['run_id']:<24} {accuracy}  {row['status'] or '?':<9} {row['display_name']}{claimed}")
    for folder in damaged:
        print(f"warning: skipped damaged run {folder.run_id}: {folder.problem}", file=sys.stderr)
    if backend.current().problem:
        print(f"error: {backend.current().problem}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def cmd_evaluate(args) -> int:
    from lib.models import inference

    run = runs.get_run(args.run, args.runs_dir)
    dataset = catalog.load_dataset(run.dataset["name"], args.data_dir, datasets.uploads_dir(args.runs_dir))
    model = runs.load_model(run)
    probs = inference.predict_proba(model, dataset.x_test, normalize=run.normalize)
    scores = inference.score(probs, dataset.y_test, dataset.info.num_classes)
    summary = {"run_id": run.run_id, "test_accuracy": scores["accuracy"], "test_loss": scores["loss"],
               "per_class_accuracy": scores["per_class_accuracy"], "images": int(len(dataset.y_test))}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{run.display_name}: test accuracy {scores['accuracy']:.2%}, loss {scores['loss']:.4f} on {len(dataset.y_test):,} images")
    return 0


def cmd_predict(args) -> int:
    import math

    from lib.data import drawing
    from lib.models import inference

    model, run = _resolve_model(args.model, args.runs_dir)
    warning = diverged_warning(run)
    if warning:
        print(f"warning: run {run.display_name!r} {warning}", file=sys.stderr)
    failures = 0
    for name in args.images:
        try:
            image = drawing.load_image_file(Path(name))
            _, probs = inference.predict_image(model, run, image)
            if probs is None:
                raise drawing.InvalidImage("the image is blank: no ink found")
            problem = "" if all(math.isfinite(p) for p in probs) else NAN_ANSWER  # a diverged run's NaN weights
        except (drawing.InvalidImage, OSError) as error:
            problem = str(error)
        if problem:
            failures += 1
            line = {"file": name, "error": problem, **({"warning": warning} if warning else {})}
            print(json.dumps(line) if args.json else f"{name}: error: {problem}")
            continue
        label = int(probs.argmax())
        class_name = run.class_names[label]
        if args.json:
            print(json.dumps({"file": name, "label": label, "class_name": class_name,
                              "confidence": float(probs[label]), "probabilities": [float(p) for p in probs],
                              **({"warning": warning} if warning else {})}))
        else:
            print(f"{name}: {class_name} ({probs[label]:.1%})" + (" - meaningless: the run diverged" if warning else ""))
    return EXIT_FAILED if failures == len(args.images) else 0


def diverged_warning(run: runs.RunInfo) -> str:
    """For a run whose training diverged, what every answer of it must carry: that it means nothing, with
    the cause and the fix its meta stores ("" for any other run)."""
    if run.meta.get("status") != DIVERGED:
        return ""
    reason = run.meta.get("stop_reason") or "Its loss exploded in training; train it again with a lower learning rate."
    return f"diverged: its answers mean nothing. {reason}"


def cmd_inside(args) -> int:
    from lib.data import drawing
    from lib.models import inference, inside

    model, run = _resolve_model(args.model, args.runs_dir)
    for name in args.images:  # the first unreadable or blank image stops with its one-line error
        processed = inference.prepare_image(run, drawing.load_image_file(Path(name)))
        if processed is None:
            raise drawing.InvalidImage(f"{name}: the image is blank: no ink found")
        analysis = inside.analyze(model, processed, normalize=run.normalize, target=args.target)
        if len(args.images) > 1 and not args.json:
            print(f"== {name}")
        _print_inside(name, analysis, run.class_names, as_json=args.json)
    return 0


def _print_inside(name: str, analysis, class_names: list[str], *, as_json: bool) -> None:
    from lib.models import inside

    box = inside.saliency_box(analysis.saliency)
    label = analysis.predicted
    if as_json:
        print(json.dumps({
            "file": name,
            "layers": [{"name": info.name, "type": info.type, "shape": list(info.output_shape), "params": info.params}
                       for info in analysis.layers],
            "label": label, "class_name": class_names[label], "confidence": float(analysis.probs[label]),
            "target": analysis.target, "saliency_method": analysis.saliency_method, "saliency_box": box,
            # the convolution the map is located with (null: the pixels alone) and that map's rows x columns
            "saliency_layer": analysis.saliency_layer, "saliency_resolution": list(analysis.saliency_resolution),
        }))
        return
    for info in analysis.layers:
        print(info.title)
    print(f"prediction: {class_names[label]} ({analysis.probs[label]:.1%})")
    where = "nowhere (the map is empty)" if box is None else "rows {}-{}, columns {}-{}".format(box[0], box[2], box[1], box[3])
    print(f"{analysis.saliency_source} for class {class_names[analysis.target]}: top 10% of the mass at {where}")


def cmd_export(args) -> int:
    from lib.store import bundles

    run = runs.get_run(args.run, args.runs_dir)
    target = args.path / f"{run.run_id}{EXPORT_SUFFIXES[args.format]}" if args.path.is_dir() else args.path
    if not target.parent.is_dir():
        raise CliError(f"There is no folder {target.parent} to write the {args.format} file into.")
    if args.format == "bundle":
        path = bundles.export_to_file(run, target)
        print(f"exported run {run.run_id} ({run.display_name}) to {path}")
        return 0
    if args.format == "keras":
        _copy_atomically(run.model_path, target)
        print(f"exported run {run.run_id} ({run.display_name}) as .keras to {target}")
        return 0
    check, source = _checked_export(run, args)
    title = exports.FORMATS[args.format].title
    if not check.ok:
        raise exports.ExportFailed(f"The {title} export of run {run.run_id} is not written: {check.reason}.")
    _copy_atomically(source, target)
    print(f"exported run {run.run_id} ({run.display_name}) as {title} to {target}: {check.summary}")
    return 0


def _checked_export(run: runs.RunInfo, args) -> tuple[exports.ExportCheck, Path]:
    """The run's export in `args.format` and its check against Keras: cached in the run's exports folder
    (which the app shows too), made here if missing; a read-only run's are made in a temporary folder."""
    import tempfile

    from lib.data import paths

    out_dir = exports.export_dir(run.path) if not run.read_only else Path(tempfile.mkdtemp(prefix="mnist-studio-"))
    check = exports.read_checks(out_dir, run.model_path).get(args.format)
    if check is None:
        hardware.import_tensorflow_quietly()
        with hardware.silenced_stderr_fd():  # the converters' C++ notices; Python errors still raise
            check = exports.make_exports(run.model_path, out_dir, exports.ModelFacts.of(run), [args.format],
                                         data_dir=args.data_dir,
                                         uploads_dir=datasets.uploads_dir(args.runs_dir or paths.runs_dir()))[args.format]
    return check, out_dir / exports.FORMATS[args.format].file_name


def _copy_atomically(source: Path, target: Path) -> None:
    import shutil

    tmp = target.with_name(f".{target.name}.tmp")
    try:
        shutil.copyfile(source, tmp)
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def cmd_import(args) -> int:
    from lib.execution import imports

    # Checked, loaded and scored in a child process with a time and memory limit, as on the server.
    run = imports.import_file(args.path, args.runs_dir, dataset=args.dataset, data_dir=args.data_dir)
    if args.json:
        print(json.dumps(runs.summary(run)))
    else:
        accuracy = run.meta.get("test_accuracy")
        score = "" if accuracy is None else f" · test accuracy {accuracy:.2%}"
        if score and run.meta.get("scores") == "claimed":
            score += " (the bundle's claim: its dataset is not here to check it)"
        print(f"imported as run {run.run_id} ({run.display_name}){score}\n{run.meta.get('stop_reason', '')}")
    return 0


def _resolve_model(ref: str, runs_dir) -> tuple[object, runs.RunInfo]:
    """A run id, 'default', a run folder or a .keras file -> (model, run).

    A bare .keras file outside a run folder becomes a run without metadata: digit
    preprocessing at the model's own input size, classes named 0..K-1.
    """
    path = Path(ref)
    if path.suffix == ".keras" and path.is_file():
        model = runs.load_model_file(path)
        try:
            run = runs.read_run(path.parent)
        except runs.DamagedRun:
            height, width, channels = model.input_shape[1:]
            dataset = {"input_shape": [height, width, channels],
                       "class_names": [str(i) for i in range(model.output_shape[-1])]}
            run = runs.RunInfo(path.stem, path.parent, {"config": {}, "dataset": dataset})
        return model, run
    if path.is_dir() and (path / runs.MODEL_FILE).is_file():
        run = runs.read_run(path)
    else:
        run = runs.get_run(ref, runs_dir)
    return runs.load_model(run), run


class _ProgressBar:
    """A one-line terminal progress bar fed by training progress events."""

    def __init__(self, stream):
        self.stream = stream
        self.last_draw = 0.0
        self.interactive = stream.isatty()

    def update(self, event: dict) -> None:
        kind = event.get("kind")
        if kind == "batch":
            now = time.monotonic()
            if not self.interactive or now - self.last_draw < BAR_INTERVAL_S:
                return
            self.last_draw = now
            done = event["step"] / event["steps"]
            filled = int(done * BAR_WIDTH)
            eta = event.get("eta")
            self.stream.write(
                f"\repoch {event['epoch']}/{event['epochs']} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] "
                f"loss {event['loss']:.4f} acc {event['accuracy']:.4f} "
                f"{event['samples_per_s']:,.0f} img/s ETA {eta or 0:.0f}s "
            )
            self.stream.flush()
        elif kind == "epoch":
            val = event.get("val_accuracy")
            val_text = f" val_acc {val:.4f}" if val is not None else ""
            self.stream.write(
                f"\repoch {event['epoch']}/{event['epochs']} loss {event['loss'] or float('nan'):.4f} "
                f"acc {event['accuracy'] or float('nan'):.4f}{val_text} ({event['seconds']:.1f} s)".ljust(100) + "\n"
            )
            self.stream.flush()

    def close(self) -> None:
        self.stream.flush()
