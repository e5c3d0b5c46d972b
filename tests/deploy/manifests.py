"""Readers and checks for the deployment files (docker-compose.yml, deploy/k8s/, deploy/env.example).

No Docker engine or Kubernetes cluster runs in CI, so these functions read the YAML with pyyaml and check what
would otherwise fail only at deploy time: commands that do not exist, hosts and ports that do not line up,
secrets written into the files, and Ray without token authentication. Each check returns a list of problems
(empty when fine) so a test can show all of them at once, and so the checks themselves can be tested on
broken documents.
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
K8S_DIR = ROOT / "deploy" / "k8s"

# Environment names that hold secrets; their values must come from the env file or a Secret.
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|(^|_)KEY$|CREDENTIAL", re.IGNORECASE)
# A Compose substitution: ${VAR}, ${VAR:?message}, ${VAR?message}, ${VAR:-default}; `$${VAR}` is an escape
# that reaches the container's shell unchanged.
SUBSTITUTION = re.compile(r"(?<!\$)\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}")
# Executables installed in the images besides the project's own scripts (console scripts of dependencies).
KNOWN_EXECUTABLES = {"ray", "python", "pg_isready"}


# ---------------------------------------------------------------------------------------------- loading


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    """All non-empty documents of a YAML file (Kubernetes files hold several, separated by ---)."""
    with path.open() as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def load_compose(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    docs = load_yaml_documents(path)
    assert len(docs) == 1, f"{path.name} must hold one YAML document, found {len(docs)}"
    return docs[0]


def load_k8s(directory: Path = K8S_DIR) -> list[dict[str, Any]]:
    """Every Kubernetes object in the directory's kustomization resources, in file order."""
    kustomization = load_yaml_documents(directory / "kustomization.yaml")[0]
    objects: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        for doc in load_yaml_documents(directory / resource):
            doc.setdefault("metadata", {})["_file"] = resource
            objects.append(doc)
    return objects


def load_env_example(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """KEY=VALUE lines of the documented env file; comments and blank lines skipped."""
    values: dict[str, str] = {}
    for lineno, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}:{lineno}: expected KEY=VALUE, got {raw!r}"
        values[key.strip()] = value.strip()
    return values


# ---------------------------------------------------------------------------------------------- commands


def command_argv(command: str | Sequence[str] | None) -> list[str]:
    """A Compose or Kubernetes command as an argv list (Compose also accepts one shell-like string)."""
    if command is None:
        return []
    if isinstance(command, str):
        return shlex.split(command)
    return [str(part) for part in command]


def cli_subcommands() -> set[str]:
    """The subcommands registered in the ``schedsearch`` parser, as the console script would see them."""
    import argparse

    from cli import build_parser

    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def check_command(argv: Sequence[str], *, where: str, subcommands: set[str], root: Path = ROOT) -> list[str]:
    """The executable exists in the image: a registered ``schedsearch`` subcommand, a project script, or a
    console script of a dependency that the project's virtual environment also has."""
    if not argv:
        return []
    exe = argv[0]
    if exe == "schedsearch":
        if len(argv) < 2 or argv[1] not in subcommands:
            got = argv[1] if len(argv) > 1 else None
            return [
                f"{where}: `schedsearch {got}` is not a registered subcommand; known: {sorted(subcommands)}"
            ]
        return []
    if exe.startswith(("scripts/", "./scripts/", "/app/scripts/")):
        script = root / exe.removeprefix("/app/").removeprefix("./")
        if not script.is_file():
            return [f"{where}: script {exe} does not exist in the repository"]
        return []
    if exe in KNOWN_EXECUTABLES:
        if exe == "ray" and not (Path(sys.executable).parent / "ray").exists():
            return [
                f"{where}: `ray` is not installed next to {Path(sys.executable).name}; is ray a dependency?"
            ]
        return []
    return [
        f"{where}: unknown executable {exe!r}; expected schedsearch, a scripts/ file or {KNOWN_EXECUTABLES}"
    ]


def flag_value(argv: Sequence[str], flag: str) -> str | None:
    """The value of ``--flag=value`` or ``--flag value`` in an argv list."""
    for i, part in enumerate(argv):
        if part.startswith(flag + "="):
            return part.split("=", 1)[1]
        if part == flag and i + 1 < len(argv):
            return argv[i + 1]
    return None


# ---------------------------------------------------------------------------------------------- values


def substitutions(text: str) -> Iterator[re.Match[str]]:
    return SUBSTITUTION.finditer(text)


def resolve_defaults(text: str, env: Mapping[str, str]) -> str:
    """Replace each ${VAR...} with the env file's value (what `docker compose` would do with that file)."""
    return SUBSTITUTION.sub(lambda m: env.get(m["name"], m["arg"] if m["op"] in (":-", "-") else ""), text)


def url_password(url: str) -> str | None:
    """The password part of a URL such as postgresql+psycopg://user:pw@host/db, or None."""
    return urlsplit(url).password if "://" in url else None


def check_compose_secret(name: str, value: str, *, where: str) -> list[str]:
    """A secret-looking variable must be exactly one ${VAR} without a default; a URL's password likewise."""
    problems = []
    if SECRET_NAME.search(name):
        match = SUBSTITUTION.fullmatch(value)
        if match is None:
            problems.append(f"{where}: {name} is hard-coded ({value!r}); use ${{VAR:?...}} from the env file")
        elif match["op"] in (":-", "-"):
            problems.append(
                f"{where}: {name} has a default in the compose file ({value!r}); secrets have none"
            )
    if "://" in value:
        # A required substitution becomes a marker, a defaulted one its default: a password that is not the
        # marker was written into the file (literally or as a compose default).
        marked = SUBSTITUTION.sub(lambda m: m["arg"] if m["op"] in (":-", "-") else "SUBST", value)
        password = url_password(marked)
        if password is not None and password != "SUBST":
            problems.append(
                f"{where}: {name} holds a literal password in its URL; use ${{VAR:?...}} from the env file"
            )
    return problems


# ---------------------------------------------------------------------------------------------- compose


def compose_environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def host_port(address: str) -> tuple[str, int]:
    """("ray-head", 6379) from "ray-head:6379" or "ray://ray-head:10001" or a URL."""
    parts = urlsplit(address if "://" in address else f"//{address}")
    assert parts.hostname is not None and parts.port is not None, f"no host:port in {address!r}"
    return parts.hostname, parts.port


def published_ports(service: Mapping[str, Any], env: Mapping[str, str]) -> list[tuple[str | None, str, int]]:
    """(host address or None, host port, container port) for each `ports` entry (short syntax), with the
    ${VAR} substitutions resolved from ``env`` first (their defaults hold colons too)."""
    out: list[tuple[str | None, str, int]] = []
    for entry in service.get("ports") or []:
        fields = resolve_defaults(str(entry), env).rsplit(":", 2)
        container = int(fields[-1].split("/")[0])
        if len(fields) == 3:
            out.append((fields[0], fields[1], container))
        elif len(fields) == 2:
            out.append((None, fields[0], container))
        else:
            out.append((None, "", container))
    return out


def check_ray_auth(env: Mapping[str, str], *, where: str, secret_ref: bool = False) -> list[str]:
    problems = []
    if env.get("RAY_AUTH_MODE") != "token":
        problems.append(f"{where}: RAY_AUTH_MODE must be 'token', got {env.get('RAY_AUTH_MODE')!r}")
    token = env.get("RAY_AUTH_TOKEN")
    if secret_ref:
        if token != "<secretKeyRef>":
            problems.append(f"{where}: RAY_AUTH_TOKEN must come from a Secret (secretKeyRef), got {token!r}")
    elif token is None or SUBSTITUTION.fullmatch(token) is None:
        problems.append(
            f"{where}: RAY_AUTH_TOKEN must be ${{RAY_AUTH_TOKEN:?...}} from the env file, got {token!r}"
        )
    return problems


# ---------------------------------------------------------------------------------------------- kubernetes


def pod_containers(obj: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, container) for every container and init container of a Deployment, Job or RayCluster."""
    kind = obj["kind"]
    name = obj["metadata"]["name"]
    templates: list[tuple[str, Mapping[str, Any]]] = []
    if kind in ("Deployment", "StatefulSet", "Job"):
        templates.append((name, obj["spec"]["template"]))
    elif kind == "RayCluster":
        templates.append((f"{name}/head", obj["spec"]["headGroupSpec"]["template"]))
        for group in obj["spec"].get("workerGroupSpecs", []):
            templates.append((f"{name}/{group['groupName']}", group["template"]))
    for prefix, template in templates:
        spec = template["spec"]
        for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
            yield f"{kind} {prefix}/{container['name']}", container


def k8s_environment(
    container: Mapping[str, Any], configmaps: Mapping[str, Mapping[str, str]]
) -> dict[str, str]:
    """The container's environment: envFrom ConfigMaps first, then env entries (which win, as in Kubernetes).
    A value from a Secret reads as "<secretKeyRef>", one from elsewhere as "<valueFrom>"."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        if ref is not None:
            env.update(configmaps.get(ref["name"], {}))
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        elif "secretKeyRef" in item.get("valueFrom", {}):
            env[item["name"]] = "<secretKeyRef>"
        else:
            env[item["name"]] = "<valueFrom>"
    return env


def check_k8s_env_secrets(container: Mapping[str, Any], *, where: str) -> list[str]:
    """Secret-looking variables and database URLs come from a secretKeyRef, never from a literal value."""
    problems = []
    for item in container.get("env", []):
        name = item["name"]
        if "value" not in item:
            continue
        if SECRET_NAME.search(name) or name.endswith("DATABASE_URL") or url_password(str(item["value"])):
            problems.append(f"{where}: {name} has a literal value; use valueFrom.secretKeyRef")
    return problems
