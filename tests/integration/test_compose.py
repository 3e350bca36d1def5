"""docker-compose.yml, the Dockerfile, Prometheus's config and Grafana's provisioning.

No Docker engine runs here: Debian's ``docker-compose`` (installed if missing) validates and
resolves the file without one (``docker-compose config``). Every billstream service's
command is then run with ``--help`` through the real CLI, so a renamed command or option
fails here rather than in a container on a server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.config import REPO_ROOT
from tests.debian import ensure_debian

COMPOSE = REPO_ROOT / "docker-compose.yml"
BILLSTREAM_SERVICES = {"worker-1", "worker-2", "dext-poller", "push"}
SANDBOXES = {"dext-sandbox", "intacct-sandbox", "sage-accounting-sandbox"}


def ensure_docker_compose() -> str:
    return ensure_debian("docker-compose", "docker-compose")


def compose_config(env_file: Path, *profiles: str) -> subprocess.CompletedProcess[str]:
    args = [ensure_docker_compose(), "--project-directory", str(REPO_ROOT), "-f", str(COMPOSE)]
    args += ["--env-file", str(env_file)]
    for profile in profiles:
        args += ["--profile", profile]
    # Only what compose needs: the developer's own BILLSTREAM_* must not leak into the check.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BILLSTREAM_", "GRAFANA_"))}
    env["BILLSTREAM_ENV_FILE"] = str(env_file)
    return subprocess.run(
        [*args, "config"], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compose") / "billstream.env"
    shutil.copy(REPO_ROOT / ".env.example", path)
    # As a user fills it in: the example itself leaves the password empty.
    text = path.read_text().replace(
        "GRAFANA_ADMIN_PASSWORD=\n", "GRAFANA_ADMIN_PASSWORD=s3cr3t-of-mine\n"
    )
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def resolved(env_file: Path) -> dict[str, Any]:
    done = compose_config(env_file)
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


@pytest.fixture(scope="module")
def resolved_sandbox(env_file: Path) -> dict[str, Any]:
    done = compose_config(env_file, "sandbox")
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """target -> host path of a service's bind mounts (compose 1.x prints short syntax)."""
    out = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("/"):
            out[target] = Path(source)
    return out


def test_the_stack(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    everyday = {n for n, s in services.items() if not s.get("profiles")}
    assert everyday == {"kafka", "pod", "prometheus", "grafana", *BILLSTREAM_SERVICES}
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    assert str(kafka["environment"]["KAFKA_NODE_ID"]) == "1"
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana")


def test_the_sandboxes_are_behind_a_profile(resolved_sandbox: dict[str, Any]) -> None:
    services = resolved_sandbox["services"]
    assert {n for n, s in services.items() if s.get("profiles")} == SANDBOXES
    for name in SANDBOXES:
        assert services[name]["profiles"] == ["sandbox"], name
        # Same network namespace as the workers: their document links are on loopback.
        assert services[name]["network_mode"] == "service:pod", name
    tenants = (REPO_ROOT / "deploy" / "tenants.sandbox.toml").read_text()
    assert 'url = "http://127.0.0.1:8910"' in tenants  # the Intacct sandbox's port above


def test_workers(resolved: dict[str, Any]) -> None:
    workers = {n: s for n, s in resolved["services"].items() if s.get("command") == ["worker"]}
    assert len(workers) >= 2
    ports = {int(s["environment"]["BILLSTREAM_METRICS_PORT"]) for s in workers.values()}
    # One network namespace (the pod): each worker's /metrics needs its own port.
    assert len(ports) == len(workers)
    for name, service in workers.items():
        env = service["environment"]
        assert env["BILLSTREAM_KAFKA_URL"] == "kafka://kafka:9092", name
        assert env["BILLSTREAM_METRICS_HOST"] == "0.0.0.0", name
        # Static membership is for the embedded broker only (README, Known limits).
        assert "BILLSTREAM_GROUP_INSTANCE_ID" not in env, name
        assert service["network_mode"] == "service:pod", name
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy", name
    scrape = yaml.safe_load((REPO_ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {
        t for job in scrape["scrape_configs"] for c in job["static_configs"] for t in c["targets"]
    }
    assert targets == {f"pod:{port}" for port in ports}


def test_secrets_come_only_from_the_env_file(env_file: Path, resolved: dict[str, Any]) -> None:
    raw = yaml.safe_load(COMPOSE.read_text())
    secretish = re.compile(r"SECRET|PASSWORD|TOKEN|KEY", re.IGNORECASE)
    for name, service in raw["services"].items():
        env = service.get("environment") or {}
        for key, value in env.items() if isinstance(env, dict) else []:
            if secretish.search(key):
                assert str(value).startswith("${"), f"{name}: {key} is written in the file"
    example = {
        line.split("=", 1)[0]
        for line in env_file.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    for name in BILLSTREAM_SERVICES:
        assert raw["services"][name]["env_file"] == "${BILLSTREAM_ENV_FILE:-.env}", name
        assert example <= set(resolved["services"][name]["environment"]), name
    # Grafana refuses to start without a password from the env file, none is defaulted.
    empty = env_file.parent / "empty.env"
    empty.write_text("")
    done = compose_config(empty)
    assert done.returncode != 0 and "GRAFANA_ADMIN_PASSWORD" in done.stderr
    # Nor does the example as shipped: it holds no password anyone could leave in place.
    shipped = env_file.parent / "shipped.env"
    shutil.copy(REPO_ROOT / ".env.example", shipped)
    done = compose_config(shipped)
    assert done.returncode != 0 and "GRAFANA_ADMIN_PASSWORD" in done.stderr
    tracked = subprocess.run(
        ["git", "ls-files", ".env"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert tracked.stdout.strip() == "", ".env is in the repo"


def _billstream_commands(config: dict[str, Any]) -> dict[str, list[str]]:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["billstream"\]$', dockerfile, re.MULTILINE)
    out = {}
    for name, service in config["services"].items():
        if "build" in service:
            assert "entrypoint" not in service, f"{name}: the image's entrypoint is billstream"
            out[name] = [str(part) for part in service["command"]]
    return out


def test_every_service_command_exists(resolved_sandbox: dict[str, Any]) -> None:
    commands = _billstream_commands(resolved_sandbox)
    assert set(commands) == BILLSTREAM_SERVICES | SANDBOXES
    for name, command in commands.items():
        # The options the service passes come first: click refuses an unknown one before
        # it gets to --help.
        done = subprocess.run(
            [sys.executable, "-m", "streams.cli", *command, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=REPO_ROOT,
        )
        assert done.returncode == 0, f"{name}: billstream {' '.join(command)}: {done.stderr}"
        assert "Usage: billstream" in done.stdout, name


def test_the_dockerfile_copies_what_exists() -> None:
    for line in (REPO_ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO_ROOT / source).exists(), source


def test_grafana_provisioning_matches_the_compose_mounts(resolved: dict[str, Any]) -> None:
    mounts = bind_mounts(resolved["services"]["grafana"])
    assert mounts["/etc/grafana/provisioning"] == REPO_ROOT / "grafana" / "provisioning"
    provider = yaml.safe_load(
        (REPO_ROOT / "grafana/provisioning/dashboards/billstream.yml").read_text()
    )
    [path] = [p["options"]["path"] for p in provider["providers"]]
    assert mounts[path] == REPO_ROOT / "grafana" / "dashboards"
    datasource = yaml.safe_load(
        (REPO_ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    [source] = datasource["datasources"]
    assert source["url"] == "http://prometheus:9090"
    dashboard = json.loads((REPO_ROOT / "grafana/dashboards/billstream.json").read_text())
    used = {
        target["datasource"]["uid"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    }
    assert used == {source["uid"]}


def test_prometheus_config_is_valid(tmp_path: Path, resolved: dict[str, Any]) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is installed with Debian's prometheus by test_metrics_alerts")
    mounts = bind_mounts(resolved["services"]["prometheus"])
    config = mounts["/etc/prometheus/prometheus.yml"].read_text()
    # Where compose mounts the rules, as seen from here.
    local = config.replace("/etc/prometheus/alerts.yml", str(mounts["/etc/prometheus/alerts.yml"]))
    (tmp_path / "prometheus.yml").write_text(local)
    done = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
