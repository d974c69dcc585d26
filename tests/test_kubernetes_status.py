"""The status Job of deploy/kubernetes/status: what it runs, with what, and the docs' lines that start and read it."""

from __future__ import annotations

import os
import shlex
import subprocess
from typing import Any

from conftest import required_program
from test_docs_commands import code_lines
from test_kubernetes import (
    DOCS_PAGE,
    JOB_DELETION_MARGIN_S,
    KUBE_JOB_FAILED_FOR_S,
    KUSTOMIZATION,
    ROOT,
    STATUS,
    STATUS_JOB_NAME,
    cronjob,
    documents,
    environment,
    mounts,
    status_job,
    status_kustomization,
    yaml,
)


def pod(resource: dict[str, Any]) -> dict[str, Any]:
    spec = resource["spec"]
    template = spec["jobTemplate"]["spec"]["template"] if "jobTemplate" in spec else spec["template"]
    found: dict[str, Any] = template["spec"]
    return found


def test_the_status_job_runs_status_json_as_the_first_cronjob_with_its_config_password_and_volumes() -> None:
    job = status_job()
    assert job["metadata"]["name"] == STATUS_JOB_NAME
    status, check = pod(job), pod(cronjob())
    [container] = status["containers"]
    assert container["args"] == ["status", "--json"]
    assert status["hostname"] == check["hostname"], "status's `this host` is the first CronJob's"
    assert environment(status)["PGPASSWORD"] == environment(pod(cronjob()))["PGPASSWORD"]
    assert environment(status)["HOME"] == environment(check)["HOME"]
    status_mounts, check_mounts = mounts(status), mounts(check)
    assert status_mounts.keys() == check_mounts.keys()
    for path in ("/config", "/downloads"):
        assert status_mounts[path] == check_mounts[path], path
    assert status_mounts["/tmp"].get("emptyDir") is not None
    [downloads] = [mount for mount in container["volumeMounts"] if mount["mountPath"] == "/downloads"]
    assert downloads["readOnly"] is True, "status only reads the collection"
    assert job["spec"]["backoffLimit"] == 0, "an unhealthy status (exit 1) is an answer, not to be asked again"
    assert job["spec"]["ttlSecondsAfterFinished"] + JOB_DELETION_MARGIN_S < KUBE_JOB_FAILED_FOR_S
    assert job["metadata"]["labels"]["app.kubernetes.io/name"] != "playlist-cron", (
        "the docs' log recipes select the checks' pods by app.kubernetes.io/name=playlist-cron"
    )


def test_the_status_kustomization_uses_the_base_namespace_and_image() -> None:
    [base] = documents(KUSTOMIZATION)
    status = status_kustomization()
    assert status["kind"] == "Kustomization"
    assert status["namespace"] == base["namespace"]
    assert status["images"] == base["images"], "set the image's tag in both kustomization.yaml files"
    assert "status" not in {path.split("/")[0] for path in base["resources"]}, "applied with the base it runs once"


def recipe() -> list[list[str]]:
    """The docs' command lines about the status Job, split as a shell would."""
    lines = [line for line in code_lines(DOCS_PAGE) if STATUS_JOB_NAME in line or "kubernetes/status" in line]
    return [shlex.split(line) for line in lines]


def test_the_docs_recipe_deletes_applies_and_reads_the_job_the_kustomization_makes() -> None:
    namespace = status_kustomization()["namespace"]
    delete, apply, logs = recipe()
    assert delete == ["kubectl", "-n", namespace, "delete", "job", STATUS_JOB_NAME, "--ignore-not-found"]
    assert apply == ["kubectl", "apply", "-k", str(STATUS.relative_to(ROOT))]
    assert logs[:5] == ["kubectl", "-n", namespace, "logs", "-f"] and f"job/{STATUS_JOB_NAME}" in logs
    # The kustomization's own comment gives the same three lines.
    comment = [line.removeprefix("#").strip() for line in (STATUS / "kustomization.yaml").read_text().splitlines()]
    assert [shlex.split(line) for line in comment if line.startswith("kubectl")] == recipe()


def kubectl() -> str:
    return required_program("kubectl", "the status kustomization is not built by the real kustomize here")


def test_kubectl_builds_the_status_job_with_the_image_and_namespace_the_recipe_names(tmp_path: Any) -> None:
    """`kubectl kustomize` (offline: what `kubectl apply -k` would send) on the recipe's folder."""
    [_, apply, logs] = recipe()
    built = subprocess.run(
        [kubectl(), "kustomize", apply[-1]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KUBECONFIG": str(tmp_path / "none")},  # no cluster is asked
    )
    assert built.returncode == 0, built.stderr
    [job] = [document for document in yaml.safe_load_all(built.stdout) if document]
    assert (job["kind"], job["metadata"]["name"], job["metadata"]["namespace"]) == ("Job", STATUS_JOB_NAME, logs[2])
    [image] = status_kustomization()["images"]
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{image['newName']}:{image['newTag']}"
    assert container["args"] == ["status", "--json"]
