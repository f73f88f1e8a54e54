"""``image-completion``: fill your own photo from the command line, or serve the local web page.

    image-completion fill PHOTO [MASK] -o OUT.png [--recipe refine|paper] [--model PATH] [--method ...]
    image-completion fill PHOTOS/ [MASKS/] -o OUT/            (pairs matched by file stem)
    image-completion serve [--recipe R | --model PATH] [--port 8000] [--max-pixels N] [--allow-host NAME]

Masks: white = hole; without MASK the photo's alpha (transparent = hole). Bad input: one line
``image-completion: error: <file>: <problem>``, status 1, nothing written (README, "Fill your own photo").
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from pydantic import TypeAdapter

from image_completion.app.files import FillError, check_output_file, plan_folder
from image_completion.app.fill import LOG as FILL_LOG
from image_completion.app.fill import METHODS, PARAMS_FILE, Filler, default_model, model_path_of
from image_completion.config import InpaintRadius
from image_completion.errors import InputError, one_line

PROG = "image-completion"


def build_parser() -> argparse.ArgumentParser:
    """The ``image-completion`` parser with its ``fill`` and ``serve`` subcommands."""
    parser = argparse.ArgumentParser(prog=PROG, description="Fill holes in your own photos (image completion).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{fill,serve}")

    def add_model_options(sub: argparse.ArgumentParser) -> None:
        which = sub.add_mutually_exclusive_group()
        which.add_argument(
            "--recipe",
            default=None,
            metavar="NAME",
            help="use the generator `dvc repro` trained with this recipe, models/NAME/stage2/generator.keras "
            "(default: train.default_recipe of --params, the improved recipe `refine`; `paper` is the paper's)",
        )
        which.add_argument(
            "--model",
            type=Path,
            default=None,
            help="a saved generator (.keras) instead; its model_card.json beside it says how its input is made "
            "(image size, hole pre-fill, mask channel)",
        )
        sub.add_argument(
            "--params",
            type=Path,
            default=PARAMS_FILE,
            help=f"the repository's params file, read for train.default_recipe when neither --recipe nor --model is given (default: {PARAMS_FILE})",
        )
        sub.add_argument(
            "--hole-value",
            type=_fraction,
            default=None,
            help="value that replaced hole pixels when the model was trained; required only for a model "
            "without model_card.json (with a card it must match the card)",
        )
        sub.add_argument(
            "--radius",
            type=_radius,
            default=3,
            help=f"neighbourhood radius in pixels of the telea/ns methods, {_RADIUS['minimum']}..{_RADIUS['maximum']} (default: 3)",
        )

    fill = commands.add_parser("fill", help="fill the hole of a photo (or a folder of photos)")
    fill.add_argument("photo", type=Path, metavar="PHOTO", help="photo file, or a folder of photos")
    fill.add_argument(
        "mask",
        type=Path,
        nargs="?",
        default=None,
        metavar="MASK",
        help="mask file (white = hole; PNG or JPEG), or a folder of masks named like the photos; "
        "omitted: the photo's alpha channel (transparent = hole)",
    )
    fill.add_argument(
        "-o", "--out", type=Path, required=True, metavar="OUT", help="output PNG file, or an output folder when PHOTO is a folder"
    )
    fill.add_argument(
        "--method",
        choices=METHODS,
        default="model",
        help="model: the trained generator (default); telea, ns (Navier-Stokes), biharmonic: classical",
    )
    fill.add_argument("--no-progress", action="store_true", help="folder mode: no progress bar")
    add_max_pixels(fill, "refused, status 1")
    add_model_options(fill)

    add_serve_parser(commands, add_model_options)
    return parser


def _ranged(convert: Callable[[str], float], low: float, high: float, what: str) -> Callable[[str], float]:
    """An argparse type: ``convert(text)`` within [low, high] (nan refused), else a usage error."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    return parse


_fraction = _ranged(float, 0.0, 1.0, "a number in [0, 1] (an image value)")
_port = _ranged(int, 0, 65535, "a TCP port 0..65535 (0 picks a free one)")
# The range evaluate.inpaint_radius allows (config.InpaintRadius): the time of telea/ns grows with it.
_RADIUS = TypeAdapter(InpaintRadius).json_schema()
_radius = _ranged(int, _RADIUS["minimum"], _RADIUS["maximum"], f"a radius in pixels {_RADIUS['minimum']}..{_RADIUS['maximum']}")


def _pixels(text: str) -> int:
    from image_completion.app.web.guard import PILLOW_MAX_PIXELS  # noqa: PLC0415 - TensorFlow and the server load on use: `--help` and argument errors stay fast

    try:
        pixels = int(text.replace("_", ""))
    except ValueError:
        pixels = 0
    if not 1 <= pixels <= PILLOW_MAX_PIXELS:
        raise argparse.ArgumentTypeError(f"must be a number of pixels 1..{PILLOW_MAX_PIXELS}, got {text!r}")
    return pixels


def add_serve_parser(commands, add_model_options) -> None:
    serve = commands.add_parser("serve", help="serve the local web page (upload, paint the hole, fill, download)")
    serve.add_argument("--port", type=_port, default=8000, help="TCP port (default: 8000; 0 picks a free one)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this computer only)")
    serve.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests addressed to NAME (the Host header; repeatable), e.g. this "
        "computer's network name with --host 0.0.0.0; always allowed: 127.0.0.1, localhost, "
        "[::1] and the --host address",
    )
    add_max_pixels(serve, "HTTP 413")
    add_model_options(serve)


def add_max_pixels(sub: argparse.ArgumentParser, refusal: str) -> None:
    """``--max-pixels``, the pixel budget of ``fill`` and ``serve`` (None: ``guard.default_max_pixels()``)."""
    from image_completion.app.fill import BYTES_PER_PIXEL  # noqa: PLC0415 - OpenCV loads on use
    from image_completion.app.web.guard import default_max_pixels  # noqa: PLC0415 - TensorFlow and the server load on use: `--help` and argument errors stay fast

    sub.add_argument(
        "--max-pixels",
        type=_pixels,
        default=None,
        metavar="N",
        help=f"largest photo or mask accepted, in pixels (width x height, read from the file's "
        f"header before decoding; larger: {refusal}). Default: a quarter of this machine's memory "
        f"at {BYTES_PER_PIXEL} bytes per pixel (what a fill may use per pixel), here {default_max_pixels()}",
    )


def _filler(args: argparse.Namespace, need_model: bool) -> Filler:
    generator = None
    if need_model:
        from image_completion.app.fill import load_generator  # noqa: PLC0415 - TensorFlow and the server load on use: `--help` and argument errors stay fast

        _import_tensorflow_quietly()
        generator = load_generator(args.model, args.hole_value)
    return Filler(generator=generator, inpaint_radius=args.radius)


def _import_tensorflow_quietly() -> None:
    """Imports TensorFlow with the process's stderr (fd 2) closed for the duration.

    TensorFlow 2.21 prints oneDNN/CPU-feature info lines from C++ while it is imported, before
    absl logging is set up, so ``TF_CPP_MIN_LOG_LEVEL`` cannot silence them; they would bury the
    one-line messages of this command. An import *failure* still raises after stderr is back.
    """
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow  # noqa: F401, PLC0415 - TensorFlow and the server load on use: `--help` and argument errors stay fast
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def run_fill(args: argparse.Namespace) -> None:
    from image_completion.app.fill import fill_file, fill_folder  # noqa: PLC0415 - TensorFlow and the server load on use: `--help` and argument errors stay fast
    from image_completion.app.web.guard import default_max_pixels  # noqa: PLC0415 - TensorFlow and the server load on use: `--help` and argument errors stay fast

    need_model = args.method == "model"
    if not need_model and (args.model or args.recipe) is not None:  # a model the user named would be unused
        raise FillError(
            f"--model/--recipe {args.model or args.recipe}: only used with --method model, not --method {args.method}"
        )
    _resolve_model(args, need_model)
    max_pixels = args.max_pixels or default_max_pixels()
    if args.photo.is_dir():
        plan = plan_folder(args.photo, args.mask, args.out, max_pixels)  # validates every pair first
        filler = _filler(args, need_model)
        written = fill_folder(plan, filler, args.method, progress=not args.no_progress)
        print(f"wrote {len(written)} filled photos to {args.out}")
        return
    if args.mask is not None and args.mask.is_dir():
        raise FillError(f"{args.mask}: MASK is a folder but PHOTO {args.photo} is a file")
    check_output_file(args.out)
    filler = _filler(args, need_model)
    fill_file(args.photo, args.mask, args.out, filler, args.method, max_pixels)
    print(f"wrote {args.out}")


def _resolve_model(args: argparse.Namespace, need_model: bool) -> None:
    """``args.model``: the --model file, or the --recipe's (default: train.default_recipe's) generator."""
    if not need_model:
        return
    args.model = args.model or (model_path_of(args.recipe) if args.recipe else default_model(args.params))
    if not args.model.exists():  # fail before reading any photo
        raise FillError(_missing(args.model))


def _missing(model: Path) -> str:
    from image_completion.app.fill import missing_model_message  # noqa: PLC0415 - TensorFlow and the server load on use: `--help` and argument errors stay fast

    return missing_model_message(model)


def run_serve(args: argparse.Namespace) -> None:
    from image_completion.app.web.server import Limits, serve  # noqa: PLC0415 - TensorFlow and the server load on use: `--help` and argument errors stay fast

    _resolve_model(args, need_model=True)
    filler = _filler(args, need_model=True)
    limits = Limits() if args.max_pixels is None else Limits(max_pixels=args.max_pixels)
    serve(filler, host=args.host, port=args.port, limits=limits, allow_hosts=tuple(args.allow_host))


def _stop(signum: int, frame) -> None:
    raise KeyboardInterrupt(signum)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status (0 ok, 1 bad input, 2 usage,
    128 + the signal number after Ctrl-C, SIGTERM or SIGHUP)."""
    # TensorFlow's C++ start-up logging would bury the one-line error message.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # A file name this stdout's encoding cannot show (not UTF-8, or any non-ASCII under LANG=C) is
    # printed with backslash escapes, as stderr does, never a crash after the work is done.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    # SIGTERM and SIGHUP are handled like Ctrl-C (KeyboardInterrupt): every temp file is removed.
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    notes = _notes_on_stderr()
    try:
        if args.command == "fill":
            run_fill(args)
        else:
            run_serve(args)
    except (InputError, OSError) as err:  # OSError: e.g. no permission to write OUT; it names the file
        print(f"{PROG}: error: {one_line(err)}", file=sys.stderr)
        return 1
    except MemoryError as err:  # a photo or hole too big for this machine's memory
        where = args.photo if args.command == "fill" else "serve"
        print(f"{PROG}: error: {where}: {one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as stop:
        return 128 + (stop.args[0] if stop.args else signal.SIGINT)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        FILL_LOG.removeHandler(notes)
    return 0


def _notes_on_stderr() -> logging.Handler:
    """Prints what the fill chose to do differently (a hole solved at reduced resolution) as
    ``image-completion: note: ...`` on stderr; returns the handler to remove afterwards."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: note: %(message)s"))
    FILL_LOG.addHandler(handler)
    FILL_LOG.setLevel(logging.INFO)
    return handler


if __name__ == "__main__":
    sys.exit(main())
