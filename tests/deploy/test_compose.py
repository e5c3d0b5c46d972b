"""docker-compose.yml read with pyyaml and checked for what `docker compose up` would show only at deploy
time."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy import manifests as m


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return m.load_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def env_file() -> dict[str, str]:
    return m.load_env_example()


@pytest.fixture(scope="module")
def subcommands() -> set[str]:
    return m.cli_subcommands()


def test_has_the_services_of_the_deployment(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= {"postgres", "migrate", "api", "dispatcher", "ray-head", "ray-worker"}


def test_every_command_exists_in_the_project(
    services: dict[str, dict[str, Any]], subcommands: set[str]
) -> None:
    problems: list[str] = []
    for name, service in services.items():
        argv = m.command_argv(service.get("command"))
        problems += m.check_command(argv, where=f"service {name}", subcommands=subcommands)
    assert problems == []


def test_images_are_built_from_deploy_docker(services: dict[str, dict[str, Any]]) -> None:
    built = {name: s["build"] for name, s in services.items() if "build" in s}
    # Every project service runs one of our two images; only postgres is a stock image.
    assert set(built) == set(services) - {"postgres"}
    dockerfiles = {b["dockerfile"] for b in built.values()}
    assert dockerfiles == {"deploy/docker/Dockerfile.cpu", "deploy/docker/Dockerfile.cuda"}
    for build in built.values():
        assert build["context"] == "."
        assert (m.ROOT / build["dockerfile"]).is_file(), build["dockerfile"]


def test_dockerfiles_copy_existing_paths_and_install_the_workers_extra() -> None:
    for name in ("Dockerfile.cpu", "Dockerfile.cuda"):
        text = (m.ROOT / "deploy" / "docker" / name).read_text()
        for line in text.splitlines():
            if line.startswith("COPY "):
                for source in line.split()[1:-1]:
                    assert (m.ROOT / source).exists(), f"{name}: COPY {source} does not exist"
        assert 'pip install ".[workers]"' in text, f"{name} must install the project with its workers extra"
    pyproject = (m.ROOT / "pyproject.toml").read_text()
    assert "\nworkers = [" in pyproject


def test_dockerfiles_copy_every_installed_package() -> None:
    """The image installs what pyproject's packages.find includes; a package not copied (the CLI when it left
    service/) would leave the `schedsearch` entry point without its module."""
    import tomllib

    pyproject = tomllib.loads((m.ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert pyproject["project"]["scripts"]["schedsearch"].split(":")[0] in packages
    for name in ("Dockerfile.cpu", "Dockerfile.cuda"):
        lines = (m.ROOT / "deploy" / "docker" / name).read_text().splitlines()
        copied = {line.split()[1] for line in lines if line.startswith("COPY ")}
        assert packages <= copied, f"{name} does not copy {sorted(packages - copied)}"


def test_postgres_has_a_volume_and_a_healthcheck(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    volume = postgres["volumes"][0].split(":")
    assert volume[1] == "/var/lib/postgresql/data"
    assert volume[0] in compose["volumes"], "the data volume must be a named volume"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])


def test_migration_runs_before_api_and_dispatcher(services: dict[str, dict[str, Any]]) -> None:
    assert m.command_argv(services["migrate"]["command"]) == ["schedsearch", "migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "dispatcher"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name


def test_database_url_points_at_the_postgres_service(
    services: dict[str, dict[str, Any]], env_file: dict[str, str]
) -> None:
    postgres_env = m.compose_environment(services["postgres"])
    # ray-head too: the job drivers run there and write results to the database.
    for name in ("migrate", "api", "dispatcher", "ray-head"):
        url = m.resolve_defaults(m.compose_environment(services[name])["SCHEDSEARCH_DATABASE_URL"], env_file)
        parts = m.urlsplit(url)
        assert parts.scheme == "postgresql+psycopg", name
        assert (parts.hostname, parts.port) == ("postgres", 5432), name
        # The same user, password and database the postgres container is created with.
        assert parts.username == m.resolve_defaults(postgres_env["POSTGRES_USER"], env_file), name
        assert parts.password == m.resolve_defaults(postgres_env["POSTGRES_PASSWORD"], env_file), name
        assert parts.path.lstrip("/") == m.resolve_defaults(postgres_env["POSTGRES_DB"], env_file), name


def test_ray_addresses_point_at_the_head_gcs_port(services: dict[str, dict[str, Any]]) -> None:
    head_argv = m.command_argv(services["ray-head"]["command"])
    assert "--head" in head_argv
    gcs_port = int(m.flag_value(head_argv, "--port") or 6379)
    dispatcher_address = m.compose_environment(services["dispatcher"])["SCHEDSEARCH_RAY_ADDRESS"]
    assert m.host_port(dispatcher_address) == ("ray-head", gcs_port)
    # Jobs are submitted to the head's dashboard.
    dashboard_port = int(m.flag_value(head_argv, "--dashboard-port") or 8265)
    dashboard_url = m.compose_environment(services["dispatcher"])["SCHEDSEARCH_RAY_DASHBOARD_URL"]
    assert m.host_port(dashboard_url) == ("ray-head", dashboard_port)
    worker_address = m.flag_value(m.command_argv(services["ray-worker"]["command"]), "--address")
    assert worker_address is not None
    assert m.host_port(worker_address) == ("ray-head", gcs_port)


def test_api_listens_where_it_is_published(services: dict[str, dict[str, Any]]) -> None:
    api = services["api"]
    env = m.compose_environment(api)
    assert env["SCHEDSEARCH_HOST"] == "0.0.0.0", "inside a container the API must listen on all interfaces"
    port = int(env["SCHEDSEARCH_PORT"])
    assert [container for _, _, container in m.published_ports(api, {})] == [port]
    assert f"127.0.0.1:{port}/healthz" in " ".join(api["healthcheck"]["test"])
    # The dispatcher service runs jobs; a second, embedded one in the API would compete with it for Ray.
    assert env["SCHEDSEARCH_EMBEDDED_DISPATCHER"] == "false"


def test_no_secret_is_hard_coded(services: dict[str, dict[str, Any]]) -> None:
    problems: list[str] = []
    for name, service in services.items():
        for key, value in m.compose_environment(service).items():
            problems += m.check_compose_secret(key, value, where=f"service {name}")
    assert problems == []


def test_every_variable_is_documented_in_the_env_file_with_the_same_default(
    compose: dict[str, Any], env_file: dict[str, str]
) -> None:
    text = m.COMPOSE_FILE.read_text()
    used = list(m.substitutions(text))
    undocumented = sorted({match["name"] for match in used} - set(env_file))
    assert undocumented == [], "variables used in docker-compose.yml but missing from deploy/env.example"
    for match in used:
        name = match["name"]
        if match["op"] in (":-", "-"):
            assert env_file[name] == match["arg"], (
                f"{name}: env.example says {env_file[name]!r}, compose {match['arg']!r}"
            )
        else:
            # A required value (a secret): the example holds a placeholder that says to change it.
            assert env_file[name].startswith("change-me"), name


def test_ray_token_auth_is_on_for_every_ray_process(services: dict[str, dict[str, Any]]) -> None:
    problems: list[str] = []
    for name, service in services.items():
        argv = m.command_argv(service.get("command"))
        talks_to_ray = argv[:1] == ["ray"] or argv[:2] == ["schedsearch", "dispatcher"]
        if talks_to_ray:
            problems += m.check_ray_auth(m.compose_environment(service), where=f"service {name}")
    assert problems == []


def test_dashboard_is_published_only_with_auth_and_on_loopback_by_default(
    services: dict[str, dict[str, Any]], env_file: dict[str, str]
) -> None:
    head = services["ray-head"]
    argv = m.command_argv(head["command"])
    dashboard_port = int(m.flag_value(argv, "--dashboard-port") or 8265)
    assert dashboard_port == 8265
    for name, service in services.items():
        # Both the compose defaults ({}) and the documented env file bind the dashboard to loopback.
        for host, _, container in m.published_ports(service, {}) + m.published_ports(service, env_file):
            if name == "ray-head" and container == dashboard_port:
                assert m.compose_environment(service)["RAY_AUTH_MODE"] == "token"
                assert host == "127.0.0.1"
            else:
                # Nothing else of the Ray cluster (GCS, client server) leaves the compose network.
                assert name in ("api",), f"service {name} publishes port {container}"


def test_ray_workers_reserve_gpus_and_can_be_scaled(services: dict[str, dict[str, Any]]) -> None:
    worker = services["ray-worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    # --scale fails with a fixed container name or a fixed host port.
    assert "container_name" not in worker and "ports" not in worker
    assert worker["build"]["dockerfile"].endswith("Dockerfile.cuda")
    gpus = m.flag_value(m.command_argv(worker["command"]), "--num-gpus")
    assert gpus == str(devices[0]["count"]), "Ray must advertise the GPUs the container reserves"


def test_every_schedsearch_variable_is_a_real_setting(services: dict[str, dict[str, Any]]) -> None:
    from service.settings import Settings

    known = {f"SCHEDSEARCH_{name.upper()}" for name in Settings.model_fields}
    for name, service in services.items():
        unknown = sorted(
            k for k in m.compose_environment(service) if k.startswith("SCHEDSEARCH_") and k not in known
        )
        assert unknown == [], f"service {name} sets variables no setting reads"


def test_nodes_that_run_trials_mount_the_data_root(services: dict[str, dict[str, Any]]) -> None:
    # Trials run on the workers and, when the head offers CPUs, on the head: both need the CIFAR folder.
    for name in ("ray-head", "ray-worker"):
        root = m.compose_environment(services[name])["SCHEDSEARCH_DATA_ROOT"]
        mounts = [str(v).rsplit(":", 2) for v in services[name]["volumes"]]
        assert any(target == root and mode == "ro" for _, target, mode in mounts), name
    assert m.compose_environment(services["api"])["SCHEDSEARCH_DATA_ROOT"] == root


def test_task_plugins_go_into_both_images(
    services: dict[str, dict[str, Any]], env_file: dict[str, str]
) -> None:
    # The API validates jobs against the tasks installed in its image and the Ray nodes run them: one list.
    args = {name: s["build"].get("args", {}) for name, s in services.items() if "build" in s}
    assert {a.get("SCHEDSEARCH_PLUGINS") for a in args.values()} == {"${SCHEDSEARCH_PLUGINS:-}"}, args
    assert "SCHEDSEARCH_PLUGINS" in env_file
    for name in ("Dockerfile.cpu", "Dockerfile.cuda"):
        text = (m.ROOT / "deploy" / "docker" / name).read_text()
        project, arg = text.index('pip install ".[workers]"'), text.index('ARG SCHEDSEARCH_PLUGINS=""')
        install = text.index("pip install $SCHEDSEARCH_PLUGINS")
        assert project < arg < install, f"{name}: plugins are installed after schedsearch, from the build arg"
