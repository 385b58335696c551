"""The Docker recipe for teams cannot be run here (no Docker engine): check what can be checked without it."""

import re
import subprocess

import yaml

from tests.helpers import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"


def _compose_variables(text: str) -> set[str]:
    # ${VAR} is read from the .env file; $${VAR} is escaped for the container's own shell.
    return set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)\}", text))


def test_every_compose_variable_is_in_the_example_env_file_and_no_secret_is_written_out():
    compose_text = (DEPLOY / "docker-compose.yml").read_text()
    example = dict(
        line.split("=", 1)
        for line in (DEPLOY / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert _compose_variables(compose_text) <= set(example)
    secrets = [name for name in example if "PASSWORD" in name or "SECRET" in name]
    assert secrets and all(example[name].startswith("CHANGE-ME") for name in secrets)
    compose = yaml.safe_load(compose_text)
    for service in compose["services"].values():
        for name, value in (service.get("environment") or {}).items():
            if "PASSWORD" in name or "SECRET" in name:
                assert str(value).startswith("${"), f"{name} must come from the .env file"


def test_long_running_services_have_health_checks_and_start_in_order():
    services = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]
    assert {"postgres", "minio", "mlflow"} <= {name for name, service in services.items() if "healthcheck" in service}
    assert services["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["mlflow"]["depends_on"]["create-bucket"]["condition"] == "service_completed_successfully"


def test_the_real_env_file_is_ignored_by_git():
    ignored = subprocess.run(["git", "check-ignore", "deploy/.env"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert ignored.stdout.strip() == "deploy/.env"


def test_the_server_image_pins_what_the_project_pins():
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    dockerfile = (DEPLOY / "mlflow.Dockerfile").read_text()
    for pin in re.findall(r'"((?:mlflow|psycopg\[binary\]|boto3|Flask-WTF)==[^"]+)"', dockerfile):
        assert f'"{pin}"' in pyproject, f"{pin} differs from pyproject.toml"
    assert len(re.findall(r"==", dockerfile)) == 4
