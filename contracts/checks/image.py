"""Checks on the image itself, judged from its configuration before any container runs.

SageMaker starts ``docker run IMAGE serve``: ``serve`` replaces CMD and is passed to the
ENTRYPOINT, or, with no ENTRYPOINT, is run as a program from PATH. Signals (SIGTERM on scale-in
and updates) must reach the server, which a shell-form ENTRYPOINT prevents. The image must be
linux/amd64 (arm64 runs only on Graviton instance types). Size and user are reported, and
credentials baked into ENV are flagged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from smlocal.contracts.model import CheckInfo, Outcome, Severity, Status
from smlocal.emulator.instance_types import InstanceType

__all__ = ["IMAGE_CHECKS", "ImageFacts"]

_SHELLS = {"sh", "bash", "dash", "ash", "zsh"}
# Names that hold secrets by convention. GPG_KEY (the official python image's release-signing
# key id) is public, so a bare *_KEY suffix is not enough to flag a variable.
# Whole words of the name (split at `_`): HF_TOKEN and AWS_SECRET_ACCESS_KEY are flagged,
# TOKENIZERS_PARALLELISM (a tokenizers library switch) is not.
_SECRET_NAME = re.compile(
    r"(?:^|_)(SECRETS?|PASSWORDS?|PASSWD|TOKENS?|API_?KEYS?|ACCESS_KEY|PRIVATE_KEY|CREDENTIALS?)"
    r"(?:_|$)",
    re.I,
)
_SECRET_VALUE = re.compile(r"^(AKIA|ASIA)[0-9A-Z]{16}$|-----BEGIN [A-Z ]*PRIVATE KEY-----")


@dataclass(frozen=True)
class ImageFacts:
    """What the image checks look at: ``docker image inspect`` plus a PATH lookup."""

    image: str
    attrs: Mapping[str, Any]
    serve_path: str | None
    """Where an executable ``serve`` was found on the image's PATH (None: not found)."""
    instance: InstanceType
    """The instance type the image is meant for: its CPU architecture decides the platform."""

    @property
    def config(self) -> Mapping[str, Any]:
        config: Mapping[str, Any] = self.attrs.get("Config") or {}
        return config

    @property
    def entrypoint(self) -> list[str]:
        return list(self.config.get("Entrypoint") or [])

    @property
    def env(self) -> dict[str, str]:
        pairs = (item.partition("=") for item in self.config.get("Env") or [])
        return {key: value for key, _, value in pairs}


def _shell_form(entrypoint: Sequence[str]) -> str | None:
    """The command string of a ``/bin/sh -c "..."`` ENTRYPOINT, else None."""
    shell = len(entrypoint) >= 3 and entrypoint[0].rsplit("/", 1)[-1] in _SHELLS
    return entrypoint[2] if shell and entrypoint[1] == "-c" else None


SERVE_ARGUMENT = CheckInfo(
    "image.serve-argument",
    "starts as `IMAGE serve`",
    Severity.ERROR,
    "SageMaker runs `docker run IMAGE serve`: `serve` goes to the ENTRYPOINT, or without one "
    "must be an executable on PATH.",
)


def check_serve_argument(facts: ImageFacts) -> Outcome:
    if facts.entrypoint:
        return Outcome.passed(
            f"ENTRYPOINT {facts.entrypoint} receives `serve` as its argument",
            entrypoint=facts.entrypoint,
        )
    if facts.serve_path is not None:
        return Outcome.passed(
            f"no ENTRYPOINT; `serve` runs {facts.serve_path} from PATH",
            serve_path=facts.serve_path,
        )
    path = facts.env.get("PATH", "(unset)")
    return Outcome.failed(
        "no ENTRYPOINT and no executable `serve` on PATH",
        [
            f"Config.Entrypoint is empty and Cmd is {facts.config.get('Cmd')}; SageMaker "
            "replaces Cmd with `serve`, so Docker looks for a program named `serve`",
            f"no executable `serve` in any PATH directory ({path})",
            "fix: add an exec-form ENTRYPOINT, or install an executable `serve` on PATH",
        ],
        cmd=facts.config.get("Cmd"),
        path=path,
    )


EXEC_ENTRYPOINT = CheckInfo(
    "image.exec-entrypoint",
    "signals reach the server (exec-form ENTRYPOINT)",
    Severity.ERROR,
    "SageMaker stops containers with SIGTERM, then SIGKILL 30 s later; an exec-form ENTRYPOINT "
    "makes the server PID 1 so SIGTERM reaches it (a shell-form one swallows it).",
)


def check_exec_entrypoint(facts: ImageFacts) -> Outcome:
    command = _shell_form(facts.entrypoint)
    if command is None:
        form = f"exec form {facts.entrypoint}" if facts.entrypoint else "no ENTRYPOINT"
        return Outcome.passed(f"{form}: the server receives signals directly")
    if command.lstrip().startswith("exec "):
        return Outcome.passed(
            "shell-form ENTRYPOINT, but it `exec`s the server, so signals reach it"
        )
    shell = facts.entrypoint[0]
    return Outcome.failed(
        "shell-form ENTRYPOINT: the shell is PID 1, so SIGTERM never reaches the server",
        [
            f"Config.Entrypoint is {facts.entrypoint} (the Dockerfile's `ENTRYPOINT {command}`)",
            f"{shell} runs as PID 1, ignores SIGTERM and drops the `serve` argument",
            f"fix: ENTRYPOINT {_exec_form_hint(command)} (exec form), or `ENTRYPOINT exec ...`",
        ],
        entrypoint=facts.entrypoint,
    )


def _exec_form_hint(command: str) -> str:
    words = command.split()
    if words and words[-1] == "serve":  # `serve` is appended by SageMaker itself
        words = words[:-1]
    return "[" + ", ".join(f'"{w}"' for w in words) + "]"


PLATFORM = CheckInfo(
    "image.platform",
    "linux/amd64 image",
    Severity.ERROR,
    "SageMaker hosting runs linux/amd64 images; linux/arm64 only on Graviton (ml.*g) types.",
)


def check_platform(facts: ImageFacts) -> Outcome:
    os_name = str(facts.attrs.get("Os", ""))
    arch = str(facts.attrs.get("Architecture", ""))
    platform = f"{os_name}/{arch}"
    instance = facts.instance
    wanted = f"linux/{instance.arch}"
    measured = {"platform": platform, "instance_type": instance.name, "wanted": wanted}
    if platform == wanted:
        return Outcome.passed(f"{platform}, as {instance.name} needs", **measured)
    if platform == "linux/arm64":
        # Fine on Graviton, so only a warning for an image tested against an x86 type.
        return Outcome(
            Status.FAILED,
            f"linux/arm64: runs only on Graviton instance types (ml.c7g, ml.m7g, ...), "
            f"not on {instance.name}",
            (
                f"image platform is {platform}; {instance.name} runs {wanted}",
                "build with `docker build --platform linux/amd64`, or test with "
                "--instance-type set to a Graviton type",
            ),
            measured,
            severity=Severity.WARNING,
        )
    return Outcome.failed(
        f"{platform} cannot run on {instance.name}",
        [
            f"image platform is {platform}; {instance.name} runs {wanted}",
            f"build with `docker build --platform {wanted}`",
        ],
        **measured,
    )


SIZE = CheckInfo(
    "image.size",
    "image size",
    Severity.INFO,
    "Large images slow endpoint creation and scale-out (the image is pulled per instance).",
)


def check_size(facts: ImageFacts) -> Outcome:
    size = int(facts.attrs.get("Size") or 0)
    return Outcome.passed(f"{size / 1e6:.0f} MB uncompressed", size_bytes=size)


USER = CheckInfo(
    "image.user",
    "container user",
    Severity.INFO,
    "AWS says SageMaker expects containers to run as root (non-root ones can hit permission "
    "problems); security guides prefer non-root. Reported, never a failure.",
)


def check_user(facts: ImageFacts) -> Outcome:
    user = str(facts.config.get("User") or "")
    if user in ("", "root", "0", "0:0", "root:root"):
        return Outcome.passed("runs as root, as SageMaker expects", user=user or "root")
    return Outcome.passed(
        f"runs as {user!r}: fine for security, but check it can read /opt/ml/model and write "
        "where it needs to (SageMaker's docs expect root)",
        user=user,
    )


ENV_CREDENTIALS = CheckInfo(
    "image.env-credentials",
    "no credentials baked into ENV",
    Severity.WARNING,
    "Credentials come from the execution role at run time; values in the image's ENV are "
    "readable by anyone who can pull it.",
)


def check_env_credentials(facts: ImageFacts) -> Outcome:
    suspicious = sorted(
        name
        for name, value in facts.env.items()
        if value and (_SECRET_NAME.search(name) or _SECRET_VALUE.search(value))
    )
    if not suspicious:
        return Outcome.passed("no credential-like ENV variables")
    # Names only: the evidence must not copy the secret into CI logs.
    return Outcome.failed(
        f"ENV holds credential-like variables: {', '.join(suspicious)}",
        [f"ENV {name}=<{len(facts.env[name])} characters, not shown>" for name in suspicious]
        + ["fix: remove them from the Dockerfile; use the SageMaker execution role instead"],
        variables=suspicious,
    )


IMAGE_CHECKS: tuple[tuple[CheckInfo, Callable[[ImageFacts], Outcome]], ...] = (
    (SERVE_ARGUMENT, check_serve_argument),
    (EXEC_ENTRYPOINT, check_exec_entrypoint),
    (PLATFORM, check_platform),
    (SIZE, check_size),
    (USER, check_user),
    (ENV_CREDENTIALS, check_env_credentials),
)
