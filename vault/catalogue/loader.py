"""Every policy file behind one call, in the order a start reads them.

`VaultContext.open` and `tresor check` load the catalogues here: the purposes first, then
the contact-pressure rules (whose grants must name known purposes, so they are checked
against the catalogue just read, not a second copy), then the touchpoints, then the
controller settings (whose transfers name purposes too). The first file
that is wrong stops the start with its `PolicyError` (`vault.catalogue.source`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vault.catalogue.contact_pressure import PressureRules, load_rules
from vault.catalogue.controller import ControllerSettings, load_controller
from vault.catalogue.purposes import PurposeCatalogue, load_catalogue
from vault.catalogue.touchpoints import TouchpointCatalogue, load_touchpoints


@dataclass(frozen=True, slots=True)
class Policies:
    purposes: PurposeCatalogue
    pressure_rules: PressureRules
    touchpoints: TouchpointCatalogue
    controller: ControllerSettings


def load_policies(policies_dir: Path) -> Policies:
    """The four policy files of `policies_dir`; raises `PolicyError` naming file and line."""
    purposes = load_catalogue(policies_dir)
    rules = load_rules(policies_dir, purposes)
    touchpoints = load_touchpoints(policies_dir)
    return Policies(purposes, rules, touchpoints, load_controller(policies_dir, purposes))
