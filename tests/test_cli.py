import subprocess
import sys

import pytest

COMMANDS = ["pggan-prepare", "pggan-train", "pggan-sample", "pggan-swd", "pggan-import", "pggan-fid"]


@pytest.mark.parametrize("command", COMMANDS)
def test_console_scripts_are_installed_and_answer_help(command):
    bindir = __import__("pathlib").Path(sys.executable).parent
    result = subprocess.run([str(bindir / command), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
