"""Contract spec files: YAML and TOML load alike, faults name the field, the schema is in step."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from smlocal.contracts.specfile import (
    SCHEMA_PATH,
    ContractSpec,
    json_schema,
    load_spec,
    spec_digest,
)
from smlocal.emulator.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SPECS = sorted((REPO / "contracts" / "specs").glob("*.yaml"))


def test_schema_file_matches_the_model() -> None:
    # Regenerate with `python -m smlocal.contracts.specfile` after changing the format.
    assert json.loads(SCHEMA_PATH.read_text()) == json_schema()


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_shipped_specs_load_and_match_the_schema(path: Path) -> None:
    spec = load_spec(path)
    assert spec.examples and spec.content_types
    jsonschema.validate(yaml.safe_load(path.read_text()), json.loads(SCHEMA_PATH.read_text()))


def test_yaml_and_toml_mean_the_same(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        "content_types: [application/json]\n"
        "examples:\n  - name: a\n    content_type: application/json\n"
        '    json: {"x": [1, 2]}\n    expect: {status: 200, json: {"y": 1}}\n'
    )
    (tmp_path / "s.toml").write_text(
        'content_types = ["application/json"]\n'
        '[[examples]]\nname = "a"\ncontent_type = "application/json"\n'
        "json = { x = [1, 2] }\nexpect = { status = 200, json = { y = 1 } }\n"
    )
    from_yaml, from_toml = load_spec(tmp_path / "s.yaml"), load_spec(tmp_path / "s.toml")
    assert from_yaml == from_toml
    assert spec_digest(from_yaml) == spec_digest(from_toml)
    assert from_yaml.examples[0].payload() == b'{"x": [1, 2]}'


def test_digest_changes_with_meaning_and_body_files(tmp_path: Path) -> None:
    body = tmp_path / "body.csv"
    body.write_text("1,2\n")
    spec_file = tmp_path / "s.yaml"
    spec_file.write_text("examples:\n  - {name: a, content_type: text/csv, body_file: body.csv}\n")
    first = spec_digest(load_spec(spec_file))
    assert load_spec(spec_file).examples[0].payload() == b"1,2\n"
    body.write_text("3,4\n")
    assert spec_digest(load_spec(spec_file)) != first
    assert spec_digest(ContractSpec()) == spec_digest(ContractSpec())


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("concurrency: many\n", "concurrency"),
        ("examples:\n  - name: a\n    json: {}\n", "examples.0.content_type"),
        ("examples:\n  - {name: a, content_type: text/csv}\n", "exactly one of body, json"),
        ("surprise: 1\n", "surprise"),
        ("startup_timeout_s: 5\n", "startup_timeout_s"),
        (
            "content_types: [text/csv]\nexamples:\n"
            "  - {name: a, content_type: application/json, body: x}\n",
            "examples.0.content_type: 'application/json' is not in content_types",
        ),
        ("examples:\n  - {name: a, content_type: text/csv, body_file: gone.csv}\n", "gone.csv"),
        ("- just\n- a list\n", "top level must be a mapping"),
        ("a: [unclosed\n", "not valid YAML"),
    ],
)
def test_malformed_spec_names_the_field(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_spec(path)
    assert named in str(caught.value)
    assert caught.value.exit_code == 2


def test_spec_file_kind_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\.yaml, \.yml or \.toml"):
        load_spec(tmp_path / "spec.json")


def test_generated_bodies_are_reproducible() -> None:
    from smlocal.contracts.fuzz import generated_bodies

    first = generated_bodies("application/json", 20)
    assert first == generated_bodies("application/json", 20)
    assert 10 <= len(first) <= 20 and len(set(first)) == len(first)


@pytest.mark.parametrize("suffix", [".yaml", ".toml"])
def test_a_spec_that_is_not_utf8_is_a_config_error(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"latin1{suffix}"
    path.write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8") as caught:
        load_spec(path)
    assert caught.value.exit_code == 2
    assert "0xe9" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("empty.yaml", ""),
        ("blank.yaml", "\n  \n"),
        ("comments.yaml", "# nothing here yet\n"),
        ("braces.yaml", "{}\n"),
        ("empty.toml", ""),
        ("comments.toml", "# nothing\n"),
    ],
)
def test_an_empty_spec_is_a_usage_error_not_an_empty_contract(
    tmp_path: Path, name: str, text: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match="is empty") as caught:
        load_spec(path)
    assert caught.value.exit_code == 2


def test_a_spec_with_one_field_is_not_empty(tmp_path: Path) -> None:
    path = tmp_path / "minimal.yaml"
    path.write_text("version: 1\n")
    assert load_spec(path) == ContractSpec()
