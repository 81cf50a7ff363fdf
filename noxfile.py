"""Nox sessions, one job each: lint, typecheck, tests, docs, build, bench, demo, conformance."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import nox

PYPROJECT = nox.project.load_toml("pyproject.toml")
PYTHONS = nox.project.python_versions(PYPROJECT)  # the Programming Language classifiers
PACKAGE = "artifex.generative_models.training"  # its public API, callbacks and conformance

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.error_on_missing_interpreters = True


def _expose_pyenv_interpreters() -> None:
    """Put pyenv's ``pythonX.Y`` executables on PATH when PATH lacks them.

    pyenv's shims only answer for the selected version, so ``python3.12`` is not
    found on a machine whose global version is 3.11. This finds every version pyenv
    installed, without needing pyenv configured in the shell.
    """
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    extra = []
    for version in PYTHONS:
        if shutil.which(f"python{version}") is not None and not _is_pyenv_shim(version):
            continue
        candidates = sorted(root.glob(f"{version}.*/bin"), key=_version_key)
        if candidates:
            extra.append(str(candidates[-1]))
    if extra:
        os.environ["PATH"] = os.pathsep.join([*extra, os.environ.get("PATH", "")])


def _is_pyenv_shim(version: str) -> bool:
    found = shutil.which(f"python{version}")
    return found is not None and "shims" in Path(found).parts


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in path.parent.name.split(".") if part.isdigit())


_expose_pyenv_interpreters()


def _install(session: nox.Session, *groups: str, extras: str = "") -> None:
    session.install("-e", f".[{extras}]" if extras else ".")
    for group in groups:
        session.install(*nox.project.dependency_groups(PYPROJECT, group))


@nox.session(python=PYTHONS[0])
def lint(session: nox.Session) -> None:
    """Check formatting and lint rules with ruff, and duplicated code in src with pylint."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # Only pylint's similarity check (configured in pyproject.toml); ruff has none.
    session.run("pylint", "--disable=all", "--enable=duplicate-code", "src")


@nox.session(python=PYTHONS)
def typecheck(session: nox.Session) -> None:
    """Type-check with six checkers; check the installed API's type completeness.

    The project: mypy --strict over src, tests, typings, benchmarks, examples and this file
    (mypy.ini); pyright and basedpyright standard over the same and strict over src
    (pyproject.toml, pyright-strict.json); ty with its default rules ([tool.ty]); pyrefly
    ([tool.pyrefly]) and zuban (mypy.ini) on the typing tests. Then tests/typing/users, a
    user's project with its own configuration files and no local stubs, under all six; and
    ``pyright --verifytypes`` on an installed (not editable) copy of the package.
    """
    session.install(".", *nox.project.dependency_groups(PYPROJECT, "typecheck"))
    # A built copy of the current src, not an editable one, for --verifytypes and for the
    # users' project (which sees the package as a user installs it).
    session.install("--no-deps", "--force-reinstall", ".")
    assert isinstance(session.python, str)
    version, python = session.python, str(Path(session.bin) / "python")
    session.run("mypy", "--python-version", version, *session.posargs)
    for pyright in ("pyright", "basedpyright"):
        session.run(pyright, "--pythonversion", version)
        session.run(pyright, "--pythonversion", version, "-p", "pyright-strict.json")
    session.run("ty", "check", "--python", python, "--python-version", version)
    session.run("pyrefly", "check", "--python-version", version)
    # zuban: the typing tests only (its false positives elsewhere: tests/typing/README.md).
    zuban = ("zuban", "check", "--python-executable", python, "--python-version", version)
    session.run(*zuban, "--always-true", "ZUBAN", "tests/typing")
    with session.chdir("tests/typing/users"):
        session.run("mypy", "--python-executable", python, "--python-version", version)
        session.run(*zuban, "--always-true", "ZUBAN")
        for pyright in ("pyright", "basedpyright"):
            session.run(pyright, "--pythonpath", python, "--pythonversion", version)
        session.run(
            "pyrefly", "check", "--python-interpreter-path", python, "--python-version", version
        )
        session.run("ty", "check", "--python", python, "--python-version", version)
    with session.chdir("tests/typing/users/recommended"):  # basedpyright's default mode
        session.run("basedpyright", "--pythonpath", python, "--pythonversion", version)
    # From an empty folder, so that the installed copy is checked, not src/.
    with session.chdir(session.create_tmp()):
        session.run("pyright", "--verifytypes", PACKAGE, "--ignoreexternal")


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite, with the tracker extras and grain.

    On the first Python only: mlflow (a heavy install; its tests skip on the others), the
    ``one_python`` fault laws, and every Python example of docs/ and the README.
    """
    first = session.python == PYTHONS[0]
    _install(session, "test", extras="wandb,mlflow,grain" if first else "wandb,grain")
    env = {"JAX_PLATFORMS": "cpu"}
    only_first = [] if first else ["-m", "not one_python"]
    session.run("pytest", *only_first, *session.posargs, env=env)
    if first and not session.posargs:
        # Not with tests/: --markdown-docs would import every .py file there for its docstrings.
        docs = ["--markdown-docs", "--markdown-docs-syntax=superfences", "docs", "README.md"]
        session.run("pytest", *docs, env=env)


@nox.session(python=PYTHONS[0])
def docs(session: nox.Session) -> None:
    """Build the documentation site strictly into build/site; open it in headless Chromium."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "docs"))
    session.run("mkdocs", "build", "--strict", env={"NO_MKDOCS_2_WARNING": "1"})
    session.run("pytest", "site_tests", *session.posargs)


@nox.session(python=PYTHONS[0])
def bench(session: nox.Session) -> None:
    """Run the benchmarks and print speed ratios against baselines measured in the same run.

    On the CPU, with Keras (the ``bench`` group) for bench_peers.py's Keras contenders. On a
    machine with an accelerator and no network: ``python benchmarks/run_on_accelerator.py``.
    """
    _install(session, "bench")
    env = {"JAX_PLATFORMS": "cpu", "KERAS_BACKEND": "jax"}
    for script in sorted(Path("benchmarks").glob("bench_*.py")):
        session.run("python", str(script), *session.posargs, env=env)


@nox.session(python=PYTHONS[0], reuse_venv=True)
def demo(session: nox.Session) -> None:
    """Train the demo VAE on scikit-learn's digits; arguments go to the demo's CLI.

    The venv is kept between calls, and the (editable) install is redone only when
    pyproject.toml changed, so a second call starts at once.
    """
    _install_once(session, "-e", ".[demo]")
    session.run("artifex-demo", *session.posargs, env={"JAX_PLATFORMS": "cpu"})


def _install_once(session: nox.Session, *args: str) -> None:
    """``session.install(*args)``, unless this venv did it already with this pyproject.toml."""
    stamp = Path(session.bin).parent / ".installed-by-noxfile"
    key = hashlib.sha256(Path("pyproject.toml").read_bytes() + repr(args).encode()).hexdigest()
    if stamp.is_file() and stamp.read_text(encoding="utf-8") == key:
        session.log("dependencies already installed (pyproject.toml unchanged)")
        return
    session.install(*args)
    stamp.write_text(key, encoding="utf-8")


@nox.session(python=PYTHONS[0])
def conformance(session: nox.Session) -> None:
    """Check a custom trainer against the callback contract.

    Usage: ``nox -s conformance -- pkg.module:HarnessFactory [--static]
    [--scenario NAME ...] [--max-examples N]``. Run from the directory the module
    imports from (``python -m`` puts it on ``sys.path``).
    """
    if not session.posargs:
        session.error(
            "usage: nox -s conformance -- pkg.module:HarnessFactory "
            "[--static] [--scenario NAME ...] [--max-examples N]"
        )
    session.install("-e", ".[conformance]")
    session.run(
        "python",
        "-m",
        "artifex.generative_models.training.conformance",
        *session.posargs,
        env={"JAX_PLATFORMS": "cpu"},
    )


@nox.session(python=PYTHONS[0])
def build(session: nox.Session) -> None:
    """Build the sdist and wheel into dist/, check them, and try the wheel alone.

    ``twine check`` reads both files' metadata (the README as the long description); then
    a fresh venv, outside the repository, installs the wheel with its dependencies and
    nothing else and runs the README's example there, so that a missing module or data
    file of the wheel fails here rather than for its first user.
    """
    session.install(*nox.project.dependency_groups(PYPROJECT, "build"))
    dist = Path("dist")
    shutil.rmtree(dist, ignore_errors=True)
    session.run("python", "-m", "build", "--installer", "uv", "--outdir", str(dist))
    session.run("twine", "check", "--strict", *map(str, sorted(dist.iterdir())))
    (wheel,) = dist.glob("*.whl")
    scratch = Path(session.create_tmp()).resolve() / "wheel-alone"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    example = scratch / "readme_example.py"
    example.write_text(_readme_example(), encoding="utf-8")
    python = scratch / "venv" / "bin" / "python"
    venv = str(scratch / "venv")
    session.run("uv", "venv", "--quiet", "--python", str(session.python), venv, external=True)
    install = ["uv", "pip", "install", "--quiet", "--python", str(python), str(wheel.resolve())]
    session.run(*install, external=True)
    # From the scratch folder, so that the installed wheel is imported, not src/.
    with session.chdir(scratch):
        session.run(str(python), str(example), env={"JAX_PLATFORMS": "cpu"}, external=True)


def _readme_example() -> str:
    """The first Python block under the README's ``## Example`` heading."""
    text = Path("README.md").read_text(encoding="utf-8")
    section = text.split("\n## Example\n", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]
