"""The README's configuration table names exactly the settings the code has."""

from __future__ import annotations

import re

from app.settings import Settings
from tests.conftest import ROOT


def test_every_setting_is_documented_and_every_documented_one_exists():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("### Configuration"):readme.index("## The models")]
    documented = {name.lower() for name in re.findall(r"`TFSERVE_([A-Z_]+)`", table)}
    assert documented == set(Settings.model_fields)


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
