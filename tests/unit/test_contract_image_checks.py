"""Image checks judge `docker image inspect` data; no Docker needed for the verdict logic."""

from __future__ import annotations

import dataclasses
from typing import Any

from smlocal.contracts.checks.image import (
    ImageFacts,
    check_env_credentials,
    check_exec_entrypoint,
    check_platform,
    check_serve_argument,
    check_user,
)
from smlocal.contracts.model import Severity, Status
from smlocal.emulator.instance_types import lookup_instance_type


def facts(serve_path: str | None = None, **config: Any) -> ImageFacts:
    attrs = {
        "Os": config.pop("os", "linux"),
        "Architecture": config.pop("arch", "amd64"),
        "Size": 1,
        "Config": {"Env": ["PATH=/usr/bin:/bin"], **config},
    }
    return ImageFacts(
        image="i", attrs=attrs, serve_path=serve_path, instance=lookup_instance_type("ml.m5.large")
    )


def test_serve_argument_no_entrypoint_needs_serve_on_path() -> None:
    assert check_serve_argument(facts(Entrypoint=["python3", "s.py"])).status == Status.PASSED
    assert check_serve_argument(facts("/usr/bin/serve")).status == Status.PASSED  # AWS style
    missing = check_serve_argument(facts(Cmd=["python3", "s.py"]))
    assert missing.status == Status.FAILED
    assert any("/usr/bin:/bin" in line for line in missing.evidence)


def test_shell_form_entrypoint_fails_unless_it_execs() -> None:
    shell = check_exec_entrypoint(facts(Entrypoint=["/bin/sh", "-c", "python3 s.py serve"]))
    assert shell.status == Status.FAILED
    assert any('["python3", "s.py"]' in line for line in shell.evidence)  # the fix, minus serve
    execs = facts(Entrypoint=["/bin/sh", "-c", "exec python3 s.py"])
    assert check_exec_entrypoint(execs).status == Status.PASSED
    assert check_exec_entrypoint(facts()).status == Status.PASSED  # no ENTRYPOINT: AWS style


def test_platform_arm64_is_a_warning_other_platforms_an_error() -> None:
    assert check_platform(facts()).status == Status.PASSED
    arm = check_platform(facts(arch="arm64"))
    assert (arm.status, arm.severity) == (Status.FAILED, Severity.WARNING)
    assert "not on ml.m5.large" in arm.summary
    other = check_platform(facts(arch="s390x"))
    assert other.status == Status.FAILED and other.severity is None  # the check's: error


def test_platform_follows_the_instance_types_architecture() -> None:
    graviton = lookup_instance_type("ml.c7g.large")
    arm = check_platform(dataclasses.replace(facts(arch="arm64"), instance=graviton))
    assert arm.status == Status.PASSED
    amd = check_platform(dataclasses.replace(facts(), instance=graviton))
    assert amd.status == Status.FAILED and amd.severity is None  # error: it cannot start
    assert "linux/amd64 cannot run on ml.c7g.large" in amd.summary


def test_user_is_reported_never_failed() -> None:
    assert "root" in check_user(facts()).summary
    assert check_user(facts(User="1000:1000")).status == Status.PASSED


def test_credentials_are_flagged_by_name_or_value_and_never_shown() -> None:
    env = [
        "PATH=/bin",
        "GPG_KEY=A035C8C19219BA821ECEA86B64E628F8D684696D",  # python image: public, fine
        "MY_API_KEY=hunter2",
        "SOMETHING=AKIAABCDEFGHIJKLMNOP",
    ]
    outcome = check_env_credentials(facts(Env=env))
    assert outcome.status == Status.FAILED
    assert outcome.measurements["variables"] == ["MY_API_KEY", "SOMETHING"]
    assert not any("hunter2" in line or "AKIA" in line for line in outcome.evidence)
    clean = check_env_credentials(facts(Env=["PATH=/bin", "GPG_KEY=ABC"]))
    assert clean.status == Status.PASSED


def test_credential_names_match_whole_words_only() -> None:
    # TOKENIZERS_PARALLELISM is the Hugging Face tokenizers switch, not a token.
    env = ["TOKENIZERS_PARALLELISM=false", "HF_TOKEN=x", "AWS_SECRET_ACCESS_KEY=y", "DB_PASSWORD=z"]
    outcome = check_env_credentials(facts(Env=env))
    assert outcome.measurements["variables"] == ["AWS_SECRET_ACCESS_KEY", "DB_PASSWORD", "HF_TOKEN"]
    clean = check_env_credentials(facts(Env=["TOKENIZERS_PARALLELISM=false"]))
    assert clean.status == Status.PASSED
