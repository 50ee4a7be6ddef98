"""A source tree in six languages to scan: ids, substrings of ids, aliases, constants,
ignored folders, a binary, CRLF line ends, a Latin-1 file and a symlink loop."""

from __future__ import annotations

import json
import os
from pathlib import Path

from bulkops.refs import FlagObject

OBJECTS = [
    FlagObject("gates", "checkout_one_click", "Launched", "STALE_PROBABLY_LAUNCHED"),
    FlagObject("gates", "pay", "In Progress", ""),
    FlagObject("gates", "pay_v2", "In Progress", "STALE_PROBABLY_UNLAUNCHED"),
    FlagObject("gates", "unused_gate", "Disabled", "STALE_NO_RULES"),
    FlagObject("gates", "old_banner", "Archived", "STALE_PROBABLY_DEAD_CHECK"),
    FlagObject("dynamic_configs", "search_ranking", "active", ""),
    FlagObject("experiments", "button_color", "active", ""),
    FlagObject("layers", "promo_layer", "", ""),
]

FILES: dict[str, bytes] = {
    "app/checkout.py": (
        b"from statsig import statsig\n"
        b"\n"
        b'CHECKOUT_GATE = "checkout_one_click"\n'
        b"\n"
        b"def buy(user):\n"
        b"    if statsig.check_gate(user, CHECKOUT_GATE):\n"
        b"        return 1\n"
        b'    payment = "payment"  # not the gate pay\n'
        b'    label = "pay_v2_beta"  # nor pay_v2\n'
        b'    return statsig.check_gate(user, f"checkout_{user.country}")\n'
    ),
    "web/Checkout.tsx": (
        b"import { useGateValue } from '@statsig/react-bindings';\n"
        b'export const PAY_GATE = "pay_v2";\n'
        b"export function Buy() {\n"
        b"  const on = useGateValue('checkout_one_click');\n"
        b"  const cfg = getDynamicConfig(`search_ranking`);\n"
        b"  return Flags.checkoutOneClick && on;\n"
        b"}\n"
    ),
    "web/Pay.tsx": b"import { PAY_GATE } from './Checkout';\nexport const payOn = () => checkGate(PAY_GATE);\n",
    "go/main.go": (
        b"package main\n"
        b"\n"
        b"func run() {\n"
        b'\tif client.CheckGate(user, "pay") {\n'
        b"\t}\n"
        b'\t// TODO: remove "old_banner" once the campaign ends\n'
        b"}\n"
    ),
    "android/Flags.kt": (
        b"package app\r\n"
        b'val exp = Statsig.getExperiment("button_color")\r\n'
        b'fun on() = Statsig.checkGate("checkout_one_click")\r\n'
    ),
    "ruby/app.rb": b"def pay?(user)\n  Statsig.check_gate(user, 'pay')\nend\n",
    "ruby/promo.rb": b'def promo?(user, kind)\n  Statsig.check_gate(user, "promo_#{kind}")\nend\n',
    "ios/Flags.swift": b'let layer = Statsig.getLayer("PromoLayer2024")\nlet l = Statsig.getLayer("promo_layer")\n',
    "legacy/latin1.py": '# caf\xe9 cr\xe8me\nstatsig.check_gate(user, "old_banner")  # \xe9t\xe9\n'.encode(
        "latin-1"
    ),
    "tests/test_checkout.py": b'statsig.override_gate("checkout_one_click", True)\n',
    ".config/flags.yml": b'banner:\n  gate: "pay"\n',
    "build/out.js": b'checkGate("pay");\n',
    "build/keep.js": b'checkGate("pay_v2");\n',
    "gen/.gitignore": b"*.gen.ts\n!keep.gen.ts\n",
    "gen/keep.gen.ts": b'checkGate("pay");\n',
    "gen/a.gen.ts": b'checkGate("pay");\n',
    "gen/b.ts": b'checkGate("pay");\n',
    "vendor/lib.js": b'checkGate("pay");\n',
    "assets/logo.bin": b"\x89PNG\x00\x00\x00pay" + b'"pay"' * 10,
    ".gitignore": b"build/\n!build/keep.js\n",
    ".bulkopsignore": b"vendor/\n",
    ".bulkops/coderefs.toml": (
        b"[match]\n"
        b"case_variants = true\n"
        b"[aliases]\n"
        b'promo_layer = ["PromoLayer2024"]\n'
        b"[[alias_patterns]]\n"
        b"regex = 'Flags\\.(\\w+)'\n"
        b'paths = ["*.tsx"]\n'
    ),
}


def make_tree(root: Path) -> Path:
    """Write :data:`FILES` under ``root`` plus a symlink loop; returns ``root``."""
    for rel, data in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    os.symlink("..", root / "app" / "loop")
    return root


def write_snapshot(path: Path) -> Path:
    """The objects as a ``bulkops snapshot`` file."""
    collections: dict[str, dict[str, dict[str, str]]] = {}
    for obj in OBJECTS:
        entry = {"id": obj.id, "status": obj.status, "typeReason": obj.type_reason}
        collections.setdefault(obj.kind, {})[obj.id] = entry
    path.write_text(json.dumps({"format": "bulkops-snapshot/1", "collections": collections}))
    return path
