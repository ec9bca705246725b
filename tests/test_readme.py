"""The README's configuration table names exactly the settings the code has."""

from __future__ import annotations

import json
import re

from app.settings import Settings
from tests.conftest import ROOT


def test_every_setting_is_documented_and_every_documented_one_exists():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("### Configuration"):readme.index("## The models")]
    documented = {name.lower() for name in re.findall(r"`TFSERVE_([A-Z_]+)`", table)}
    aliased = {name for name, field in Settings.model_fields.items() if field.validation_alias}
    alias_names = {Settings.model_fields[name].validation_alias.removeprefix("TFSERVE_").lower()
                   for name in aliased}
    assert documented - alias_names == set(Settings.model_fields) - aliased
    for name in aliased:  # read under another program's variable name
        assert f"| `{Settings.model_fields[name].validation_alias}` |" in table


def test_documented_defaults_match_the_code():
    readme = (ROOT / "README.md").read_text()
    defaults = Settings(_env_file=None)
    for name, field in Settings.model_fields.items():
        row = re.search(rf"\| `TFSERVE_{name.upper()}` \| `([^`]*)` \|", readme)
        if row is None:  # rows naming two settings (host, port)
            continue
        value = getattr(defaults, name)
        shown = row.group(1)
        if isinstance(value, bool):
            assert shown == str(value).lower(), name
        elif isinstance(value, dict):
            assert shown == "{}", name
        else:
            assert shown == str(value) or float(shown) == float(value), (name, shown, value)
        assert field.description or name == "log_level"


def readme_commands() -> list[str]:
    """The shell lines of the README's "Using the service" example block."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Using the service"):readme.index("### Models, versions")]
    block = section[section.index("```bash") + 7:section.index("```", section.index("```bash")
                                                              + 7)]
    return [line.split("  #")[0].strip() for line in block.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_the_readme_examples_run_against_a_live_server(shared_server, tmp_path):
    import shutil
    import subprocess

    from tests.conftest import SAMPLES

    commands = readme_commands()
    routes = {"/serving_default/predict", "/predict_text/predict", "/versions/1/serving_default",
              "/predict/image", "/predict/text", "/v1/models/mnist", "/metadata", "mnist:predict",
              "/versions/1:predict", "inception_v3:predict", "/models ", "/healthz", "/readyz",
              "/metrics"}
    assert all(any(r in c + " " for c in commands) for r in routes), commands
    shutil.copy(SAMPLES / "images" / "umbrella.jpg", tmp_path)
    url = shared_server
    for command in commands:
        if command.startswith("cd "):
            continue  # the scratch folder: each command already runs in tmp_path
        runnable = command.replace("http://localhost:8089", url)
        if runnable.startswith("curl "):  # fail on HTTP errors, keep the body
            runnable = "curl -sS --fail-with-body " + runnable[5:]
        result = subprocess.run(["bash", "-c", runnable], cwd=tmp_path, text=True,
                                capture_output=True, timeout=120)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        if command.startswith("curl") and "/metrics" not in command:
            assert json.loads(result.stdout), command


def oip_blocks() -> list[tuple[str, str]]:
    """(language, code) of each fenced block of the README's Open Inference Protocol section."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Open Inference Protocol"):readme.index("### gRPC\n")]
    return re.findall(r"```(bash|python)\n(.*?)```", section, flags=re.S)


def test_the_readme_v2_examples_run_against_a_live_server(shared_server, tmp_path):
    import shutil
    import subprocess
    import sys

    from tests.conftest import SAMPLES

    blocks = oip_blocks()
    assert [language for language, _ in blocks] == ["bash", "python", "python"]
    shutil.copy(SAMPLES / "images" / "umbrella.jpg", tmp_path)
    url = shared_server
    host = url.removeprefix("http://")
    for line in blocks[0][1].splitlines():
        command = line.split("  #")[0].strip()
        if not command or command.startswith("#"):
            continue
        runnable = "curl -sS --fail-with-body " + command[5:].replace("localhost:8089", host)
        result = subprocess.run(["bash", "-c", runnable], cwd=tmp_path, text=True,
                                capture_output=True, timeout=120)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        assert json.loads(result.stdout), command
    for _, code in blocks[1:]:
        result = subprocess.run([sys.executable, "-c", code.replace("localhost:8089", host)],
                                cwd=tmp_path, text=True, capture_output=True, timeout=120)
        assert result.returncode == 0, (code, result.stdout, result.stderr)
        assert result.stdout.strip(), code


def test_the_readme_grpc_examples_run_against_a_live_server(shared_server, tmp_path):
    """Each block in a fresh interpreter: tritonclient.grpc cannot share one with kserve."""
    import subprocess
    import sys

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### gRPC\n"):readme.index("### The model pages")]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 2 and all("localhost:8500" in code for code in blocks)
    printed = []
    for code in blocks:
        result = subprocess.run([sys.executable, "-c", code.replace(
            "localhost:8500", shared_server.grpc)], cwd=tmp_path, text=True,
            capture_output=True, timeout=120)
        assert result.returncode == 0, (code, result.stderr[-3000:])
        printed.append(result.stdout)
    assert re.search(r"b'(positive|negative)'", printed[0]), printed[0]
    assert re.fullmatch(r"\[\d\]\n", printed[1]), printed[1]  # one digit


def test_the_readme_model_config_and_label_examples_run(models_dir, tmp_path):
    import shutil
    import subprocess

    from tests.server import running_server

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### TensorFlow Serving's model config"):
                     readme.index("### Dynamic batching")]
    config_text = re.search(r"```\n(model_config_list.*?)```", section, flags=re.S).group(1)
    commands = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    # as the README says: the file in the models folder, beside mnist/1 and a version 2
    base = tmp_path / "models" / "mnist"
    for version in (1, 2):
        shutil.copytree(models_dir / "mnist" / "1", base / str(version))
    config = tmp_path / "models" / "models.config"
    config.write_text(config_text)
    (tmp_path / "json_image.json").write_text(json.dumps(
        {"instances": [{"image_input": [0.0] * 784}]}))
    with running_server(tmp_path / "unused", poll_interval_s=0,
                        env={"TFSERVE_MODEL_CONFIG": str(config)}) as url:
        for line in commands.splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            runnable = "curl -sS --fail-with-body " + line[5:].replace(
                "http://localhost:8089", url)
            result = subprocess.run(["bash", "-c", runnable], cwd=tmp_path, text=True,
                                    capture_output=True, timeout=120)
            assert result.returncode == 0, (line, result.stdout, result.stderr)
            if "/monitoring/" not in line:
                assert json.loads(result.stdout), line
