"""The Kubernetes manifests in deploy/kubernetes: valid against the API's schemas, and as safe as they say."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import containerfile
from conftest import Project, clean_env, skip_or_fail
from playlist_cron import exit_codes
from playlist_cron.config import ENVIRONMENT_VARIABLE, load
from playlist_cron.demo.feed import FeedServer, make_items
from test_network import closed_port

try:
    import yaml  # PyYAML comes with kubernetes-validate, in the test extra
except ImportError:
    if os.environ.get("CI"):
        raise  # CI installs the test extra: the manifests must be checked there
    print("SKIPPED: PyYAML is not installed; pip install -e '.[test]' brings it with kubernetes-validate")
    pytest.skip("PyYAML is not installed (pip install -e '.[test]')", allow_module_level=True)

ROOT = Path(__file__).parent.parent
MANIFESTS = ROOT / "deploy" / "kubernetes"
KUSTOMIZATION = MANIFESTS / "kustomization.yaml"
DOCS_PAGE = ROOT / "docs" / "kubernetes.md"
OPTIONAL = {"cronjob-second-host.yaml"}  # listed, commented out, in kustomization.yaml
KUBERNETES_VERSION = (
    "1.30.0"  # the oldest release still maintained when this was written; the manifests use no newer field
)
SECRET = ("playlist-cron-database", "password")
# kube-prometheus's KubeJobFailed (kubernetes-mixin): `kube_job_failed > 0` for 15m, so a failed Job fires it once kept
# that long. The margin: the TTL controller's delay and a kube-state-metrics scrape or two before the series ends.
KUBE_JOB_FAILED_FOR_S = 15 * 60
JOB_DELETION_MARGIN_S = 3 * 60
STATUS = MANIFESTS / "status"  # a kustomization of its own, applied by hand: docs/kubernetes.md's recipe
STATUS_JOB_NAME = "playlist-cron-status"
COMPONENTS = {"pushgateway", "prometheus-operator", "postgres"}  # optional, listed commented out in kustomization.yaml
RULES = ROOT / "deploy" / "prometheus" / "playlist-cron.rules.yml"
PROMETHEUS_RULE = MANIFESTS / "prometheus-operator" / "prometheusrule.yaml"
PROMETHEUS_RULE_HEADER = """\
# The alert rules of deploy/prometheus/playlist-cron.rules.yml as a PrometheusRule: the same groups, unchanged (a
# test compares the two). After editing the rules, write this file again: python tests/test_kubernetes.py --write
# Your Prometheus may select PrometheusRules by a label of its own: add it to the labels here.
"""


def validator() -> Any:
    """kubernetes-validate's `utils` module; skips the test, saying why, where it is not installed, but fails it in CI
    (`CI` set): CI installs the test extra, which brings it."""
    try:
        from kubernetes_validate import utils
    except ImportError as error:
        skip_or_fail(
            f"kubernetes-validate is not installed ({error}); pip install -e '.[test]'",
            "CI must validate the manifests",
        )
    return utils


def documents(path: Path) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def manifest_files() -> list[Path]:
    return sorted(path for path in MANIFESTS.glob("*.yaml") if path != KUSTOMIZATION)


def resources() -> list[dict[str, Any]]:
    return [document for path in manifest_files() for document in documents(path)]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [resource for resource in resources() if resource["kind"] == kind]


def status_kustomization() -> dict[str, Any]:
    [kustomization] = documents(STATUS / "kustomization.yaml")
    return kustomization


def status_job() -> dict[str, Any]:
    [job] = [document for path in status_kustomization()["resources"] for document in documents(STATUS / path)]
    return job


def pod_templates() -> list[tuple[str, dict[str, Any]]]:
    """(name, pod spec) of every pod the manifests start: the CronJobs', the Jobs' and the status Job's."""
    found = [
        (cron["metadata"]["name"], cron["spec"]["jobTemplate"]["spec"]["template"]["spec"])
        for cron in of_kind("CronJob")
    ]
    found += [(job["metadata"]["name"], job["spec"]["template"]["spec"]) for job in [*of_kind("Job"), status_job()]]
    return found


def cronjob(name: str = "playlist-cron") -> dict[str, Any]:
    [found] = [cron for cron in of_kind("CronJob") if cron["metadata"]["name"] == name]
    return found


def config_text() -> str:
    [config_map] = of_kind("ConfigMap")
    return str(config_map["data"]["config.json"])


def loaded_config(tmp_path: Path) -> Any:
    path = tmp_path / "config" / "config.json"  # the config's folder is where relative paths would resolve
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config_text())
    return load(path)


def mounts(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{mount path: the volume mounted there} of the pod's one container."""
    [container] = pod["containers"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    return {mount["mountPath"]: volumes[mount["name"]] for mount in container["volumeMounts"]}


def mounted_volume(pod: dict[str, Any], path: str) -> dict[str, Any]:
    """The volume a path in the container is on: the mount with the longest matching mount path."""
    candidates = [mount for mount in mounts(pod) if path == mount or path.startswith(mount.rstrip("/") + "/")]
    assert candidates, f"{path} is on no volume: on the read-only root file system"
    return mounts(pod)[max(candidates, key=len)]


def environment(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    [container] = pod["containers"]
    return {variable["name"]: variable for variable in container.get("env", [])}


def test_every_manifest_validates_against_the_kubernetes_api_schemas() -> None:
    utils = validator()
    checked = []
    for path in manifest_files():
        for resource in documents(path):
            # strict: a misspelt field (`concurrencyPolcy`) is an error, not silently ignored as the API server would
            utils.validate(resource, KUBERNETES_VERSION, strict=True)
            checked.append(f"{path.name}: {resource['kind']}")
    assert {"ConfigMap", "PersistentVolumeClaim", "CronJob", "Job"} <= {name.split(": ")[1] for name in checked}
    utils.validate(status_job(), KUBERNETES_VERSION, strict=True)


def test_the_validator_refuses_a_misspelt_field_and_a_wrong_type() -> None:
    utils = validator()
    misspelt = copy.deepcopy(cronjob())
    misspelt["spec"]["concurrencyPolcy"] = misspelt["spec"].pop("concurrencyPolicy")
    with pytest.raises(utils.ValidationError):
        utils.validate(misspelt, KUBERNETES_VERSION, strict=True)
    wrong_type = copy.deepcopy(cronjob())
    wrong_type["spec"]["startingDeadlineSeconds"] = "120"
    with pytest.raises(utils.ValidationError):
        utils.validate(wrong_type, KUBERNETES_VERSION, strict=True)
    # The pod failure policy is checked as closely: a misspelt key of a rule, and exit codes given as a string.
    policy_typo = copy.deepcopy(cronjob())
    [rule, *_] = [rule for rule in pod_failure_policy(policy_typo)["rules"] if "onExitCodes" in rule]
    rule["onExitCode"] = rule.pop("onExitCodes")
    with pytest.raises(utils.ValidationError):
        utils.validate(policy_typo, KUBERNETES_VERSION, strict=True)
    codes_as_text = copy.deepcopy(cronjob())
    [rule, *_] = [rule for rule in pod_failure_policy(codes_as_text)["rules"] if "onExitCodes" in rule]
    rule["onExitCodes"]["values"] = "75"
    with pytest.raises(utils.ValidationError):
        utils.validate(codes_as_text, KUBERNETES_VERSION, strict=True)


def test_the_validator_needs_no_network() -> None:
    """It ships the schemas: a validation in a process whose every socket fails still passes."""
    validator()
    program = (
        "import socket, sys, yaml\n"
        "def refuse(*args, **kwargs): raise OSError('no network in this test')\n"
        "socket.socket.connect = refuse; socket.create_connection = refuse; socket.getaddrinfo = refuse\n"
        "from kubernetes_validate import utils\n"
        "for document in yaml.safe_load_all(open(sys.argv[1])):\n"
        "    utils.validate(document, sys.argv[2], strict=True)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program, str(MANIFESTS / "cronjob.yaml"), KUBERNETES_VERSION],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_kustomization_lists_every_manifest_and_names_the_image() -> None:
    [kustomization] = documents(KUSTOMIZATION)
    listed = kustomization["resources"]
    assert all((MANIFESTS / name).is_file() for name in listed), listed
    names = {path.name for path in manifest_files()}
    assert names - set(listed) == OPTIONAL
    for name in OPTIONAL:
        assert f"# - {name}" in KUSTOMIZATION.read_text(), f"{name} should be listed, commented out"
    [image] = kustomization["images"]
    for name, pod in pod_templates():
        [container] = pod["containers"]
        assert container["image"] == image["name"], f"{name}: kustomization.yaml's images would not set its image"


def test_cronjob_runs_every_minute_one_at_a_time_and_keeps_scheduling_after_an_outage(tmp_path: Path) -> None:
    for cron in of_kind("CronJob"):
        spec = cron["spec"]
        assert spec["schedule"] == "* * * * *"
        assert spec["concurrencyPolicy"] == "Forbid"
        assert 60 <= spec["startingDeadlineSeconds"] < 100 * 60, "set, and short of 100 missed minutes"
        assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
        job = spec["jobTemplate"]["spec"]
        assert job["backoffLimit"] == 0, "the next minute's check is the retry"
        config = loaded_config(tmp_path)
        assert job["activeDeadlineSeconds"] > config.max_runtime_seconds, "the check must end itself first, logged"
        assert job["template"]["spec"]["restartPolicy"] == "Never"


def pod_failure_policy(cron: dict[str, Any]) -> dict[str, Any]:
    policy: dict[str, Any] = cron["spec"]["jobTemplate"]["spec"]["podFailurePolicy"]
    return policy


def pod_failure_action(policy: dict[str, Any], exit_code: int, conditions: tuple[str, ...] = ()) -> str:
    """Given a Job's podFailurePolicy and how its pod ended (the check container's exit code, the pod's conditions
    that are True), return what the Job controller does, as the API documents it: the action of the first rule that
    matches, else `Count` (the failure counts against backoffLimit, 0 here: the Job fails)."""
    assert exit_code != 0, "a pod that exits 0 succeeded: no rule is looked at"
    for rule in policy["rules"]:
        if "onExitCodes" in rule:
            requirement = rule["onExitCodes"]
            matched = (exit_code in requirement["values"]) == (requirement["operator"] == "In")
        else:
            matched = any(
                pattern["type"] in conditions and pattern["status"] == "True" for pattern in rule["onPodConditions"]
            )
        if matched:
            return str(rule["action"])
    return "Count"


def test_the_pod_failure_policy_follows_the_programs_exit_codes() -> None:
    """A failure that passes by itself (exit 75) and a pod stopped by a drain or an eviction run the check again in
    the same Job, which does not fail; a config or usage error fails it at once; any other failure fails it as before.
    The codes are exit_codes.py's: a code renumbered there, or one added to the policy, fails here."""
    for cron in of_kind("CronJob"):
        policy = pod_failure_policy(cron)
        template = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        assert template["restartPolicy"] == "Never", "the API refuses a podFailurePolicy with restartPolicy OnFailure"
        [container] = template["containers"]
        named = {rule["onExitCodes"]["containerName"] for rule in policy["rules"] if "onExitCodes" in rule}
        assert named == {container["name"]}, "a rule naming another container would never match"
        expected = {
            exit_codes.TEMPFAIL: "Ignore",
            exit_codes.CONFIG: "FailJob",
            exit_codes.USAGE: "FailJob",
            exit_codes.FAILED: "Count",
            exit_codes.for_signal(signal.SIGTERM): "Count",
            exit_codes.for_signal(signal.SIGKILL): "Count",  # the memory limit's OOM kill
        }
        actions = {code: pod_failure_action(policy, code) for code in expected}
        assert actions == expected, cron["metadata"]["name"]
        listed = {code for rule in policy["rules"] if "onExitCodes" in rule for code in rule["onExitCodes"]["values"]}
        assert listed == {exit_codes.TEMPFAIL, exit_codes.CONFIG, exit_codes.USAGE}, listed
        # A node drained or the pod evicted: SIGTERM, the check ends FAILED `interrupted` with 143; not a failure.
        sigterm = exit_codes.for_signal(signal.SIGTERM)
        assert pod_failure_action(policy, sigterm, conditions=("DisruptionTarget",)) == "Ignore"
        assert pod_failure_action(policy, exit_codes.CONFIG, conditions=("DisruptionTarget",)) == "Ignore"
        for rule in policy["rules"]:
            if "onExitCodes" in rule:
                values = rule["onExitCodes"]["values"]
                assert values == sorted(set(values)), "the API wants the codes ordered, without repeats"


def test_the_migrate_job_tries_again_while_the_database_starts_but_not_after_a_config_error() -> None:
    [job] = [job for job in of_kind("Job") if job["metadata"]["name"] == "playlist-cron-db-migrate"]
    policy = job["spec"]["podFailurePolicy"]
    assert job["spec"]["backoffLimit"] > 0
    assert pod_failure_action(policy, exit_codes.TEMPFAIL) == "Count", "retried, within backoffLimit"
    assert pod_failure_action(policy, exit_codes.CONFIG) == pod_failure_action(policy, exit_codes.USAGE) == "FailJob"
    assert pod_failure_action(policy, exit_codes.FAILED) == "Count"
    assert pod_failure_action(policy, exit_codes.TEMPFAIL, conditions=("DisruptionTarget",)) == "Ignore"
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert {rule["onExitCodes"]["containerName"] for rule in policy["rules"] if "onExitCodes" in rule} == {
        container["name"]
    }


def test_the_jobs_validate_against_every_newer_schema_from_the_first_that_takes_their_failure_policy() -> None:
    """kubernetes-validate's schemas from 1.29 (1.28's and older want onPodConditions in every rule of a
    podFailurePolicy, where the API takes onExitCodes alone) to the newest it has."""
    utils = validator()
    versions = sorted(
        {version for version in utils.all_versions() if tuple(map(int, version.split(".")[:2])) >= (1, 29)},
        key=lambda version: tuple(map(int, version.split("."))),
    )
    assert KUBERNETES_VERSION in versions and len(versions) >= 2, versions
    jobs = [*of_kind("CronJob"), *of_kind("Job"), status_job()]
    for version in versions:
        for resource in jobs:
            utils.validate(resource, version, strict=True)


def test_the_real_exit_codes_of_a_failing_check_meet_the_rules_meant_for_them(project: Project) -> None:
    """The installed command, run as the pod runs it: a site that refuses connections (a temporary failure), a config
    with an unknown key and a misspelt option (errors that stay until someone fixes them)."""
    policy = pod_failure_policy(cronjob())
    project.write_config(playlist_url=f"http://127.0.0.1:{closed_port()}/feed.xml")
    refused = project.run("check")
    assert pod_failure_action(policy, refused.returncode) == "Ignore", (refused.returncode, refused.stderr)
    usage = project.run("check", "--no-such-option")
    assert pod_failure_action(policy, usage.returncode) == "FailJob", (usage.returncode, usage.stderr)
    project.write_config(check_intervall_seconds=60)
    config_error = project.run("check")
    assert pod_failure_action(policy, config_error.returncode) == "FailJob", (
        config_error.returncode,
        config_error.stderr,
    )


def test_a_failed_job_is_deleted_before_kube_job_failed_would_fire() -> None:
    for cron in of_kind("CronJob"):
        ttl_s = cron["spec"]["jobTemplate"]["spec"]["ttlSecondsAfterFinished"]
        assert ttl_s > 0, "0 would delete a Job, and its pod's log, the moment it ends"
        assert ttl_s + JOB_DELETION_MARGIN_S < KUBE_JOB_FAILED_FOR_S, ttl_s
        assert 1 <= cron["spec"]["failedJobsHistoryLimit"] <= 5


@pytest.mark.parametrize("name", [name for name, _ in pod_templates()])
def test_pods_run_as_the_image_user_unprivileged_on_a_read_only_root(name: str) -> None:
    [pod] = [pod for pod_name, pod in pod_templates() if pod_name == name]
    uid, gid = image_user()
    [container] = pod["containers"]
    effective = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    assert effective["runAsNonRoot"] is True
    assert effective["runAsUser"] == uid and effective["runAsGroup"] == gid, "the Containerfile's USER"
    assert effective["readOnlyRootFilesystem"] is True
    assert effective["allowPrivilegeEscalation"] is False
    assert effective["capabilities"]["drop"] == ["ALL"] and not effective["capabilities"].get("add")
    assert effective["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), f"{name}: resources.{kind}"
    assert mounted_volume(pod, "/config")["configMap"]["name"] == "playlist-cron-config"
    assert mounted_volume(pod, environment(pod)["HOME"]["value"]).get("emptyDir") is not None, "HOME is writable"
    assert mounted_volume(pod, "/tmp").get("emptyDir") is not None


def image_user() -> tuple[int, int]:
    user = containerfile.only("USER").arguments
    uid, _, gid = user.partition(":")
    return int(uid), int(gid)


def test_configmap_holds_a_valid_config_with_absolute_paths_on_the_pod_volumes(tmp_path: Path) -> None:
    config = loaded_config(tmp_path)
    raw = json.loads(config_text())
    assert config.database_url is not None
    assert urlsplit(config.database_url).password is None, "the password belongs in the Secret"
    assert "host_name" not in raw, "each CronJob sets its host name with `hostname:`; one value here would be shared"
    for key in ("download_dir", "state_dir"):
        assert os.path.isabs(raw[key]), f"{key} must be absolute: /config is a read-only ConfigMap folder"
    [image_config] = [value for name, value in image_environment().items() if name == ENVIRONMENT_VARIABLE]
    for name, pod in pod_templates():
        [container] = pod["containers"]
        assert container["args"][0] in ("check", "db", "status"), name
        assert str(Path(image_config).parent) in mounts(pod), f"{name}: the config is not where the image looks"
        if name.startswith("playlist-cron-db"):
            continue
        assert mounted_volume(pod, str(config.state_dir)).get("emptyDir") is not None, f"{name}: state_dir"
        downloads = mounted_volume(pod, str(config.download_dir))
        [pvc] = of_kind("PersistentVolumeClaim")
        assert downloads["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    [pvc] = of_kind("PersistentVolumeClaim")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"], "every pod of every CronJob mounts it"


def test_configmap_config_logs_json_on_stdout(tmp_path: Path) -> None:
    assert json.loads(config_text())["log_file"] == "-"
    config = loaded_config(tmp_path)
    assert config.log_file != tmp_path / "config" / "-", '`log_file: "-"` must mean stdout, not a file named -'
    assert config.log_file is None, "the events go to stdout, where Kubernetes collects them"


def image_environment() -> dict[str, str]:
    environment = {}
    for instruction in containerfile.instructions():
        if instruction.keyword == "ENV":
            for word in instruction.arguments.split():
                name, _, value = word.partition("=")
                environment[name] = value
    return environment


def test_the_password_comes_from_a_secret_that_the_manifests_do_not_hold() -> None:
    assert not of_kind("Secret"), "the Secret is created by hand (docs/kubernetes.md), never committed"
    for name, pod in pod_templates():
        variables = environment(pod)
        reference = variables["PGPASSWORD"]["valueFrom"]["secretKeyRef"]
        assert (reference["name"], reference["key"]) == SECRET, name
        assert "value" not in variables["PGPASSWORD"]
        literal = [variable for variable in variables.values() if "value" in variable]
        assert all("pass" not in variable["name"].lower() for variable in literal), literal


def test_each_cronjob_is_its_own_host_in_the_database() -> None:
    """The host name defaults to the kernel's, which is the pod's `hostname:` (or, without one, the pod's name, new
    every minute). Two CronJobs with one host name would mix their counters; one CronJob's pods keep theirs."""
    crons = of_kind("CronJob")
    assert len(crons) >= 2, "the second CronJob shows how to run more checkers"
    hostnames = [cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["hostname"] for cron in crons]
    assert len(set(hostnames)) == len(hostnames), hostnames
    first, second = cronjob("playlist-cron"), cronjob("playlist-cron-2")
    for cron in (first, second):
        cron["metadata"]["name"] = "same"
        cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["hostname"] = "same"
    assert first == second, "the second CronJob differs from the first by its name and host name alone"


@pytest.mark.slow
def test_the_configmap_config_runs_a_fleet_check_that_writes_only_to_its_volumes(tmp_path: Path, database: str) -> None:
    """The ConfigMap's config, its paths moved into a test folder as the pod's volumes, against a real database and a
    loopback feed: `db migrate`, then a check, then the status Job's command, as the pods run them; the config's folder
    gets nothing new."""
    raw = json.loads(config_text())
    volumes = {"/config": tmp_path / "config", "/downloads": tmp_path / "downloads", "/tmp": tmp_path / "tmp"}
    for folder in volumes.values():
        folder.mkdir()

    def moved(path: str) -> str:
        [mount] = [mount for mount in volumes if path.startswith(mount + "/") or path == mount]
        return str(volumes[mount]) + path.removeprefix(mount)

    with FeedServer(make_items(2, size_bytes=50_000)) as feed:
        raw.update(
            playlists=[feed.feed_url],
            database_url=database,
            download_dir=moved(raw["download_dir"]),
            state_dir=moved(raw["state_dir"]),
            min_free_bytes=0,
        )
        config = volumes["/config"] / "config.json"
        config.write_text(json.dumps(raw))
        env = clean_env(HOME=str(volumes["/tmp"]), TMPDIR=str(volumes["/tmp"]))
        env[ENVIRONMENT_VARIABLE] = str(config)
        command = str(Path(sys.executable).parent / "playlist-cron")
        migrate = subprocess.run([command, "db", "migrate"], env=env, capture_output=True, text=True, timeout=60)
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        check = subprocess.run(
            [command, "check"], env=env, cwd=volumes["/downloads"], capture_output=True, text=True, timeout=120
        )
        [status_container] = status_job()["spec"]["template"]["spec"]["containers"]
        status = subprocess.run(
            [command, *status_container["args"]], env=env, capture_output=True, text=True, timeout=60
        )
    assert check.returncode == 0, check.stdout + check.stderr
    assert status.returncode == 0, status.stdout + status.stderr
    report = json.loads(status.stdout)
    assert report["healthy"] is True and report["fleet"]["hosts"], report
    assert len(list(volumes["/downloads"].rglob("*.mp4"))) == 2
    left_in_config = sorted(path.name for path in volumes["/config"].iterdir())
    assert "-" not in left_in_config, '`log_file: "-"` wrote a file named - beside the config instead of stdout'
    assert left_in_config == ["config.json"], "the config's folder is a read-only ConfigMap in the pod"
    events = [json.loads(line) for line in check.stdout.splitlines()]
    assert events and events[-1]["event"] == "check_completed", check.stdout


# -- the optional components: a Pushgateway, and the Prometheus Operator's ServiceMonitor and PrometheusRule --------


def component_resources(name: str) -> list[dict[str, Any]]:
    [component] = documents(MANIFESTS / name / "kustomization.yaml")
    assert component["kind"] == "Component"
    return [document for path in component["resources"] for document in documents(MANIFESTS / name / path)]


def prometheus_rule_text() -> str:
    """The PrometheusRule that holds the rules file's groups: what prometheusrule.yaml must be, byte for byte."""

    def block_text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(str, block_text)
    manifest = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "playlist-cron", "labels": {"app.kubernetes.io/part-of": "playlist-cron"}},
        "spec": {"groups": yaml.safe_load(RULES.read_text())["groups"]},
    }
    return PROMETHEUS_RULE_HEADER + yaml.dump(manifest, Dumper=Dumper, sort_keys=False, width=120)


def test_kustomization_lists_the_optional_components_commented_out() -> None:
    text = KUSTOMIZATION.read_text()
    for name in COMPONENTS:
        assert f"#   - {name}" in text, f"{name} should be listed, commented out, under components:"
        assert (MANIFESTS / name / "kustomization.yaml").is_file()
    [kustomization] = documents(KUSTOMIZATION)
    assert "components" not in kustomization, "the components are optional: commented out"


def test_the_pushgateway_component_validates_and_runs_unprivileged_on_a_read_only_root() -> None:
    utils = validator()
    resources = component_resources("pushgateway")
    for resource in resources:
        utils.validate(resource, KUBERNETES_VERSION, strict=True)
    [deployment] = [resource for resource in resources if resource["kind"] == "Deployment"]
    [service] = [resource for resource in resources if resource["kind"] == "Service"]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    effective = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    assert effective["runAsNonRoot"] is True and effective["readOnlyRootFilesystem"] is True
    assert effective["allowPrivilegeEscalation"] is False and effective["capabilities"]["drop"] == ["ALL"]
    assert effective["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])


def test_the_pushgateway_component_gives_the_base_config_a_metrics_push_url_to_its_service(tmp_path: Path) -> None:
    [component] = documents(MANIFESTS / "pushgateway" / "kustomization.yaml")
    [patch] = [documents(MANIFESTS / "pushgateway" / entry["path"]) for entry in component["patches"]]
    [config_map] = of_kind("ConfigMap")
    assert patch[0]["metadata"]["name"] == config_map["metadata"]["name"]
    patched = json.loads(patch[0]["data"]["config.json"])
    push_url = patched.pop("metrics_push_url")
    assert patched == json.loads(config_text()), "the component's config is the base config and metrics_push_url"
    [service] = [resource for resource in component_resources("pushgateway") if resource["kind"] == "Service"]
    [port] = service["spec"]["ports"]
    assert push_url == f"http://{service['metadata']['name']}:{port['port']}"
    path = tmp_path / "config.json"
    path.write_text(patch[0]["data"]["config.json"])
    assert load(path).metrics_push_url == push_url


def test_the_prometheus_rule_holds_the_groups_of_the_rules_file() -> None:
    [rule] = documents(PROMETHEUS_RULE)
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"], (
        "python tests/test_kubernetes.py --write"
    )
    assert PROMETHEUS_RULE.read_text() == prometheus_rule_text(), "python tests/test_kubernetes.py --write"
    [monitor] = [
        resource for resource in component_resources("prometheus-operator") if resource["kind"] == "ServiceMonitor"
    ]
    [service] = [resource for resource in component_resources("pushgateway") if resource["kind"] == "Service"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["honorLabels"] is True, "job and instance must be the pushed group's"
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    PROMETHEUS_RULE.write_text(prometheus_rule_text())
