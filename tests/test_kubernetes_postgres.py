"""The PostgreSQL component of deploy/kubernetes: valid, restricted, wired to database_url and the Secret, and its
init script run for real against a PostgreSQL server."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from conftest import clean_env, required_program
from playlist_cron import exit_codes
from postgres_server import SUPERUSER, PostgresServer
from test_kubernetes import (
    KUBERNETES_VERSION,
    MANIFESTS,
    SECRET,
    component_resources,
    config_text,
    documents,
    loaded_config,
    validator,
    yaml,
)

COMPONENT = "postgres"
INIT_FOLDER = "/docker-entrypoint-initdb.d"  # where the official image looks for its first start's scripts
IMAGE_USER = 999  # the official Debian-based image's postgres user


def of_kind(kind: str) -> dict[str, Any]:
    [found] = [resource for resource in component_resources(COMPONENT) if resource["kind"] == kind]
    return found


def container() -> dict[str, Any]:
    [found] = of_kind("StatefulSet")["spec"]["template"]["spec"]["containers"]
    return found


def environment() -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in container()["env"]}


def mount_paths() -> dict[str, str]:
    """{mount path: volume name} of the server's container."""
    return {mount["mountPath"]: mount["name"] for mount in container()["volumeMounts"]}


def init_script() -> str:
    config_map = of_kind("ConfigMap")
    [script] = config_map["data"].values()
    return str(script)


def test_the_component_validates_against_the_kubernetes_api_schemas() -> None:
    utils = validator()
    resources = component_resources(COMPONENT)
    for resource in resources:
        utils.validate(resource, KUBERNETES_VERSION, strict=True)
    assert sorted(resource["kind"] for resource in resources) == ["ConfigMap", "Service", "StatefulSet"]
    [component] = documents(MANIFESTS / COMPONENT / "kustomization.yaml")
    assert component["kind"] == "Component"


def test_the_headless_service_postgres_is_the_host_and_port_of_database_url(tmp_path: Path) -> None:
    service, statefulset = of_kind("Service"), of_kind("StatefulSet")
    url = urlsplit(str(loaded_config(tmp_path).database_url))
    assert service["metadata"]["name"] == url.hostname == statefulset["spec"]["serviceName"]
    assert service["spec"]["clusterIP"] == "None", "headless: the StatefulSet's pod by its own address"
    [port] = service["spec"]["ports"]
    assert port["port"] == (url.port or 5432)
    [container_port] = container()["ports"]
    assert port["targetPort"] in (container_port["name"], container_port["containerPort"])
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert statefulset["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pod_labels["app.kubernetes.io/name"] != "playlist-cron", "the docs' log recipes select the checks by it"
    assert statefulset["spec"]["replicas"] == 1


def test_the_init_script_creates_the_role_and_database_of_database_url_with_the_cronjobs_password(
    tmp_path: Path,
) -> None:
    url = urlsplit(str(loaded_config(tmp_path).database_url))
    variables = environment()
    assert variables["PLAYLIST_CRON_ROLE"]["value"] == url.username
    assert variables["PLAYLIST_CRON_DATABASE"]["value"] == url.path.lstrip("/")
    password = variables["PLAYLIST_CRON_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert (password["name"], password["key"]) == SECRET, "the password the CronJobs read as PGPASSWORD"
    superuser = variables["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert superuser["name"] == SECRET[0] and superuser["key"] != SECRET[1], "the superuser's password is another"
    literal = [variable for variable in variables.values() if "value" in variable]
    assert all("PASSWORD" not in variable["name"] for variable in literal), literal
    assert "PASSWORD '" not in init_script().upper(), "no password in the script"
    statefulset = of_kind("StatefulSet")
    init_volume = mount_paths()[INIT_FOLDER]
    [volume] = [
        volume for volume in statefulset["spec"]["template"]["spec"]["volumes"] if volume["name"] == init_volume
    ]
    assert volume["configMap"]["name"] == of_kind("ConfigMap")["metadata"]["name"]
    assert volume["configMap"]["defaultMode"] & 0o111, "the image runs an executable script, sources any other"


def test_the_server_runs_unprivileged_on_a_read_only_root_with_its_writable_folders_on_volumes() -> None:
    statefulset = of_kind("StatefulSet")
    pod = statefulset["spec"]["template"]["spec"]
    effective = {**pod["securityContext"], **container()["securityContext"]}
    assert effective["runAsNonRoot"] is True and effective["runAsUser"] == IMAGE_USER != 0
    assert effective["readOnlyRootFilesystem"] is True
    assert effective["allowPrivilegeEscalation"] is False
    assert effective["capabilities"]["drop"] == ["ALL"] and not effective["capabilities"].get("add")
    assert effective["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["securityContext"]["fsGroup"] == IMAGE_USER, "the data volume writable by the server"
    assert pod["automountServiceAccountToken"] is False
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container()["resources"][kind])
    paths = mount_paths()
    emptied = {volume["name"] for volume in pod["volumes"] if "emptyDir" in volume}
    assert paths["/var/run/postgresql"] in emptied and paths["/tmp"] in emptied, "the socket's folder, /tmp"
    [claim] = statefulset["spec"]["volumeClaimTemplates"]
    pgdata = Path(environment()["PGDATA"]["value"])
    [data_mount] = [path for path, name in paths.items() if name == claim["metadata"]["name"]]
    assert pgdata.parent == Path(data_mount), "a folder under the volume's root: initdb wants it empty"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    image = container()["image"]
    assert ":" in image and not image.endswith(":latest"), "a tag, not a floating one"


def test_the_secret_is_not_in_the_component() -> None:
    assert all(resource["kind"] != "Secret" for resource in component_resources(COMPONENT))
    assert "superuser-password" in (MANIFESTS / COMPONENT / "kustomization.yaml").read_text()


def test_the_init_script_makes_a_role_that_is_no_superuser_and_owns_its_database(
    tmp_path: Path, own_postgres_server: PostgresServer
) -> None:
    """The ConfigMap's script, run as the image runs it (as the superuser, with the container's environment) against a
    real PostgreSQL server; then `playlist-cron db migrate` as the new role, which the server asks for its password
    (scram-sha-256, as the image's pg_hba.conf does over TCP), given as the CronJobs give it (PGPASSWORD), creates the
    fleet's tables in its database; a wrong password is refused."""
    psql = shutil.which("psql")
    if psql is None:
        if os.environ.get("CI"):
            pytest.fail("psql is missing; CI installs postgresql", pytrace=False)
        pytest.skip("psql is not installed")
    role, database = "fleet_role", "fleet_db"  # the test server's superuser is playlist_cron: other names here
    script = tmp_path / "10-playlist-cron.sh"
    script.write_text(init_script())
    script.chmod(0o555)
    server = own_postgres_server
    env = clean_env(
        POSTGRES_USER=SUPERUSER,
        PGHOST="127.0.0.1",
        PGPORT=str(server.port),
        PLAYLIST_CRON_ROLE=role,
        PLAYLIST_CRON_DATABASE=database,
        PLAYLIST_CRON_PASSWORD=f"it's; {secrets.token_hex(8)}",  # a quote and a semicolon: taken as data
    )
    hba = server.data_dir / "pg_hba.conf"
    hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())  # the first line that matches
    server.execute("SELECT pg_reload_conf()")
    ran = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    [(superuser, login, has_password)] = server.execute(
        "SELECT rolsuper, rolcanlogin, rolpassword IS NOT NULL FROM pg_authid WHERE rolname = %s", [role]
    )
    assert (superuser, login, has_password) == (False, True, True)
    [(owner,)] = server.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [database])
    assert owner == role
    config = tmp_path / "config.json"
    config.write_text(
        config_text().replace(
            "postgresql://playlist_cron@postgres:5432/playlist_cron",
            f"postgresql://{role}@127.0.0.1:{server.port}/{database}",
        )
    )
    command = [str(Path(sys.executable).parent / "playlist-cron"), "db", "migrate", "--config", str(config)]
    wrong = subprocess.run(command, env=clean_env(PGPASSWORD="not-it"), capture_output=True, text=True, timeout=60)
    assert wrong.returncode == exit_codes.CONFIG, wrong.stdout + wrong.stderr
    migrate = subprocess.run(
        command, env=clean_env(PGPASSWORD=env["PLAYLIST_CRON_PASSWORD"]), capture_output=True, text=True, timeout=60
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    tables = server.execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = %s", [role], database=database
    )
    assert tables[0][0] > 0
    again = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode != 0, "run twice it stops at the first error (ON_ERROR_STOP), never half-way silently"


def test_kubectl_builds_the_kustomization_with_the_component_turned_on(tmp_path: Path) -> None:
    """The base with `components: [postgres]`, as a user turns it on, built by the real kustomize (`kubectl kustomize`,
    offline): every resource validates, the PostgreSQL ones in the base's namespace."""
    utils = validator()
    kubectl = required_program("kubectl", "the kustomization is not built by the real kustomize here")
    copy = tmp_path / "kubernetes"
    shutil.copytree(MANIFESTS, copy)
    kustomization = copy / "kustomization.yaml"
    text = kustomization.read_text()
    assert "# components:\n" in text and f"#   - {COMPONENT}\n" in text
    kustomization.write_text(f"{text}components:\n  - {COMPONENT}\n")
    built = subprocess.run(
        [kubectl, "kustomize", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KUBECONFIG": str(tmp_path / "none")},
    )
    assert built.returncode == 0, built.stderr
    resources = [document for document in yaml.safe_load_all(built.stdout) if document]
    for resource in resources:
        utils.validate(resource, KUBERNETES_VERSION, strict=True)
    [base] = documents(MANIFESTS / "kustomization.yaml")
    names = {
        (resource["kind"], resource["metadata"]["name"], resource["metadata"]["namespace"]) for resource in resources
    }
    assert {("StatefulSet", "postgres", base["namespace"]), ("Service", "postgres", base["namespace"])} <= names
