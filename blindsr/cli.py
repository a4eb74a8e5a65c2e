"""Command line: ``python -m blindsr <verb> key=value ...`` (or the ``blindsr`` console script).

Each verb is a Hydra primary config in ``conf/<verb>.yaml``. Composition happens before any work
or output folder: an unknown verb, a missing required key, an unknown key or a bad value gives one
usage line on stderr and exit code 2. Every other failure the user can act on gives one line and
exit code 1; a traceback only with ``debug=true`` or ``BLINDSR_DEBUG=1``.
"""
from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, Sequence

from blindsr.errors import STOP_REQUESTED, BlindSRError, UsageError

# verb -> (module in blindsr.verbs, one-line summary, usage)
VERBS: dict[str, tuple[str, str, str]] = {
    "pipeline": ("pipeline", "estimate the kernel, then super-resolve with it",
                 "pipeline input=PHOTO [sr=zssr|srmd|bicubic] [scale=2|4] [output=DIR] [seed=N]"),
    "estimate": ("estimate", "estimate the image's SR kernel (KernelGAN)",
                 "estimate input=PHOTO [scale=2|4] [output=DIR] [seed=N]"),
    "sr": ("superresolve", "super-resolve with given kernel(s) (non-blind)",
           "sr input=PHOTO kernel=PATH[,PATH] [sr=zssr|srmd|bicubic] [scale=2|4] [output=DIR]"),
    "batch": ("batch", "run the pipeline over a folder (resumable)",
              "batch input=FOLDER output=DIR [sr=...] [scale=2|4] [executor=serial|local|submitit|ray]"),
    "report": ("report", "rebuild a batch folder's summary and report.html",
               "report output=DIR [gt=HR_FOLDER]"),
    "eval": ("evaluate", "score kernels and SR on a DIV2KRK-layout benchmark",
             "eval dataset=DIR [scale=2|4] [limit=N] [estimator=...]"),
    "degrade": ("degrade", "make a DIV2KRK-layout benchmark from HR images",
                "degrade input=HR_FOLDER output=DIR [seed=N]"),
    "weights": ("weights", "list or fetch pretrained SR weights",
                "weights list|fetch [names=[...]] [pca=PATH]"),
}
DEBUG_ENV = "BLINDSR_DEBUG"


class Interrupted(BaseException):
    """SIGTERM, raised like Ctrl-C so that cleanup code runs."""


def conf_dir() -> Path:
    """``conf/`` next to the package (source checkout, editable install) or in the install's
    shared data (wheel install)."""
    here = Path(__file__).resolve().parent.parent / "conf"
    if here.is_dir():
        return here
    return Path(sys.prefix) / "share" / "blindsr" / "conf"


def available_verbs() -> dict[str, tuple[str, str, str]]:
    """Verbs whose implementation is present."""
    found = {}
    for verb, spec in VERBS.items():
        if importlib.util.find_spec(f"blindsr.verbs.{spec[0]}") and (conf_dir() / f"{verb}.yaml").is_file():
            found[verb] = spec
    return found


def help_text() -> str:
    verbs = available_verbs()
    width = max(map(len, verbs))
    lines = ["usage: python -m blindsr <verb> key=value ...", "", "verbs:"]
    lines += [f"  {verb:<{width}}  {summary}" for verb, (_, summary, _) in verbs.items()]
    lines += ["", "python -m blindsr <verb> --help shows a verb's keys and defaults.",
              f"Errors print one line; set debug=true or {DEBUG_ENV}=1 for a traceback."]
    return "\n".join(lines)


def split_overrides(verb: str, args: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Separate Hydra overrides from path values (kept verbatim) and check top-level keys."""
    from blindsr.config import GROUPS, PATH_KEYS, SCHEMAS

    schema = SCHEMAS[verb]
    known = {f.name for f in fields(schema)}
    overrides, paths = [], {}
    for arg in args:
        if "=" not in arg:
            raise UsageError(f"expected key=value, got {arg!r}")
        key, value = arg.split("=", 1)
        bare = key.lstrip("+~")
        if bare in PATH_KEYS and bare in known:
            paths[bare] = value
            continue
        top = bare.split(".", 1)[0]
        if top not in known:
            raise UsageError(f"unknown key {top!r}; valid keys: {', '.join(sorted(known))}")
        if bare in GROUPS and value.startswith("[") and f"{bare}s" in known:
            overrides.append(f"{bare}s={value}")  # eval's Table-1 lists: estimator=[a,b] -> estimators
            continue
        if bare in GROUPS:
            choices = sorted(p.stem for p in (conf_dir() / bare).glob("*.yaml"))
            if value not in choices:
                raise UsageError(f"{bare}={value}: choose from {', '.join(choices)}")
        overrides.append(arg)
    return overrides, paths


def compose(verb: str, args: Sequence[str], require: bool = True) -> Any:
    """The verb's resolved config (an OmegaConf DictConfig), or ``UsageError``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from blindsr.config import SCHEMAS, register_schemas, validate

    overrides, paths = split_overrides(verb, args)
    register_schemas()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
            cfg = hydra_compose(config_name=verb, overrides=overrides)
    except Exception as exc:  # noqa: BLE001 - Hydra/OmegaConf raise many types for bad overrides
        raise UsageError(_first_line(exc)) from None
    for key, value in paths.items():
        cfg[key] = value
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing and require:
        raise UsageError(f"missing required key(s): {', '.join(missing)}")
    validate(cfg, SCHEMAS[verb])
    return cfg


def _first_line(exc: BaseException) -> str:
    """One line from an exception, including the cause Hydra wraps its messages around."""
    parts = []
    while exc is not None and len(parts) < 3:
        text = (str(exc).strip() or exc.__class__.__name__).split("full_key:")[0]
        parts.append(" ".join(text.split()))
        exc = exc.__cause__
    return ": ".join(dict.fromkeys(p for p in parts if p))


INTERRUPTED = 130  # the exit status after Ctrl-C or SIGTERM (128 + SIGINT, as shells report it)


def _on_sigterm(signum: int, frame: Any) -> None:
    STOP_REQUESTED.set()
    raise Interrupted()


def _on_sigint(signum: int, frame: Any) -> None:
    STOP_REQUESTED.set()
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(help_text(), file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    verb, rest = args[0], args[1:]
    verbs = available_verbs()
    if verb not in verbs:
        print(f"blindsr: error: unknown verb {verb!r}; choose from {', '.join(verbs)}", file=sys.stderr)
        return 2
    module_name, _, usage = verbs[verb]
    if verb == "weights" and rest and "=" not in rest[0] and not rest[0].startswith("-"):
        rest = [f"action={rest[0]}", *rest[1:]]  # "weights list" reads better than "action=list"
    if any(a in ("-h", "--help") for a in rest):
        return _verb_help(verb, usage, [a for a in rest if a not in ("-h", "--help")])
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0") or "debug=true" in rest
    if threading_main():
        signal.signal(signal.SIGTERM, _on_sigterm)
        signal.signal(signal.SIGINT, _on_sigint)
    try:
        cfg = compose(verb, rest)
        logging.basicConfig(level=str(cfg.log_level).upper(), format="blindsr: %(message)s")
        module = importlib.import_module(f"blindsr.verbs.{module_name}")
        return int(module.run(cfg) or 0)
    except UsageError as exc:
        print(f"blindsr {verb}: error: {exc} (usage: python -m blindsr {usage})", file=sys.stderr)
        return exc.exit_code
    except BlindSRError as exc:
        print(f"blindsr {verb}: error: {_first_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except (KeyboardInterrupt, Interrupted):
        print(f"blindsr {verb}: interrupted; finished files are kept, partial ones removed",
              file=sys.stderr)
        return INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the one place that turns crashes into one line
        if debug:
            raise
        print(f"blindsr {verb}: internal error: {exc.__class__.__name__}: {_first_line(exc)} "
              f"(rerun with {DEBUG_ENV}=1 for a traceback)", file=sys.stderr)
        return 1


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _verb_help(verb: str, usage: str, overrides: Sequence[str] = ()) -> int:
    """The verb's keys and defaults as composed with ``overrides`` (``sr=srmd --help`` shows
    SRMD's), and the values of the stage presets they select."""
    from dataclasses import asdict

    from omegaconf import OmegaConf

    from blindsr.stages import build_backend, build_estimator

    cfg = compose(verb, overrides, require=False)
    print(f"usage: python -m blindsr {usage}\n\nkeys and defaults (??? = required; null: the preset's value):\n"
          + OmegaConf.to_yaml(cfg))
    for group in ("estimator", "sr"):
        if group in cfg and "preset" in cfg[group]:
            build = build_estimator if group == "estimator" else build_backend
            values = asdict(build(cfg[group], "cpu").settings)
            print(f"{group}={cfg[group].name} preset {cfg[group].preset}:\n"
                  + OmegaConf.to_yaml({k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}))
    return 0
