"""The ``demo`` seed: a realistic, messy source project and an empty target project.

``bulkops emulator --seed demo`` and the demo serve two projects:

- **source** (key ``console-demo-source``, read-only ``console-demo-source-readonly``
  and ``console-demo-source-auditor``): 1,200 gates of every status and type, 260 of
  them ``STALE`` for five different reasons, some of those still referenced by other
  gates, dynamic configs and experiments; 140 dynamic configs; 40 segments (id lists
  of up to 4,000 ids, rule-based ones, one built on another); 14 tags, custom unit id
  types, target apps, layers with parameters and overrides, experiments in every
  lifecycle state with groups and overrides, a holdout, gate overrides, version
  histories and an audit log. A ``checkout_*`` family tagged ``payments`` carries the
  rules the rewrite examples work on (``Rollout …``, ``Temp …``, ``Old name``, the
  ``beta_testers`` segment, e-mail and ``u_123``/``u_456`` user-id conditions).
- **target** (key ``console-demo-target``, read-only ``console-demo-target-readonly``):
  empty, with the same environments.

Whatever the project settings, :data:`REVIEW_GATES` of the stale gates in progress that
nothing references require review (``reviewSettings.requiredReview``): archiving them
with the review header opens reviews, which the demo approves and commits.

Everything is drawn from ``random.Random(SEED)`` against the fixed clock ``BASE_MS``,
so two builds are equal and a test can count what it expects. Objects are stored in
the API's response shapes (``ExternalGateDto``, ``DynamicConfigDto``, ``SegmentDto``,
…) because the emulator serves them as they are.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Sequence
from typing import Any

from .common import rule_id
from .state import DEFAULT_ENVIRONMENTS, KeyInfo, Project, new_base_id

__all__ = [
    "BASE_MS",
    "DEMO_AUDITOR_KEY",
    "DEMO_SOURCE_ID",
    "DEMO_SOURCE_KEY",
    "DEMO_SOURCE_READ_ONLY_KEY",
    "DEMO_TARGET_ID",
    "DEMO_TARGET_KEY",
    "DEMO_TARGET_READ_ONLY_KEY",
    "REVIEW_GATES",
    "SEED",
    "demo_projects",
]

DEMO_SOURCE_KEY = "console-demo-source"
DEMO_TARGET_KEY = "console-demo-target"
DEMO_SOURCE_READ_ONLY_KEY = "console-demo-source-readonly"
DEMO_TARGET_READ_ONLY_KEY = "console-demo-target-readonly"
DEMO_AUDITOR_KEY = "console-demo-source-auditor"
DEMO_SOURCE_ID = "demo-source"
DEMO_TARGET_ID = "demo-target"

SEED = 20240601
BASE_MS = 1_748_736_000_000  # 2025-06-01T00:00:00Z: "now" for every timestamp in the seed
DAY_MS = 86_400_000

N_GATES = 1200
N_DYNAMIC_CONFIGS = 140
# How many stale, unreferenced gates require review (the first ones by id).
REVIEW_GATES = 5

# (type, typeReason) -> how many gates; the rest of N_GATES are TEMPORARY.
_STALE_REASONS = {
    "STALE_PROBABLY_LAUNCHED": 70,
    "STALE_PROBABLY_UNLAUNCHED": 50,
    "STALE_PROBABLY_FORGOTTEN": 60,
    "STALE_NO_RULES": 40,
    "STALE_PROBABLY_DEAD_CHECK": 40,
}
_N_PERMANENT = 300
_N_TEMPLATE = 25

_TAGS = [
    ("payments", "Checkout, billing and payment methods", False),
    ("growth", "Acquisition, activation and referral work", False),
    ("mobile", "iOS and Android apps", False),
    ("web", "The web storefront", False),
    ("infra", "Platform, caching and performance switches", False),
    ("experimentation", "Owned by the experimentation guild", False),
    ("kill-switch", "Operational kill switches: never archive", False),
    ("deprecated", "Scheduled for removal", False),
    ("q3-launch", "Part of the Q3 launch train", False),
    ("search", "Search and discovery", False),
    ("onboarding", "First-run experience", False),
    ("compliance", "Legal and regional compliance", False),
    ("team-platform", "Platform team", False),
    ("★ Core", "Core configs every team depends on", True),
]
_AREA_TAGS = {
    "search": ["search"],
    "onboarding": ["onboarding", "growth"],
    "billing": ["payments"],
    "growth": ["growth"],
    "referrals": ["growth"],
    "mobile": ["mobile"],
    "web": ["web"],
    "auth": ["compliance", "team-platform"],
    "settings": ["team-platform"],
    "recs": ["search", "experimentation"],
    "pricing": ["experimentation"],
    "notifications": ["mobile"],
}
_UNIT_ID_TYPES = [
    ("companyID", "The customer company (B2B accounts)"),
    ("deviceID", "A physical device, stable across log-ins"),
    ("accountID", "A billing account; one account has many users"),
    ("orgID", "An organisation in the admin console"),
]
_TARGET_APPS = ["web", "ios", "android", "backend", "admin_console"]

_AREAS = [
    "search", "onboarding", "billing", "profile", "feed", "notifications", "mobile", "web",
    "growth", "ads", "support", "inventory", "shipping", "pricing", "recs", "auth", "settings",
    "referrals", "analytics", "messaging", "cart", "homepage", "reviews", "wishlist", "loyalty",
]  # fmt: skip
_FEATURES = [
    "new_flow", "redesign", "dark_mode", "fast_path", "beta", "killswitch", "holiday_banner",
    "ai_suggestions", "one_click", "infinite_scroll", "cache_v2", "lazy_load", "smart_defaults",
    "rate_limit", "new_api", "sidebar", "tooltips", "email_digest", "push_optin", "sso",
    "two_factor", "bulk_edit", "export_csv", "video_preview", "price_anchor", "free_shipping",
    "gift_wrap", "promo_codes", "sticky_header", "quick_view", "ranking_v3", "spellcheck",
    "autocomplete", "translations", "accessibility", "sampling", "prefetch", "edge_cache",
    "webp_images", "pwa",
]  # fmt: skip
_SUFFIXES = ["v2", "v3", "2023", "2024", "exp", "rollout", "test", "old", "new", "temp"]
_CONFIG_KINDS = ["config", "settings", "copy", "limits", "params", "thresholds", "layout"]

_CHECKOUT_GATES = [
    "checkout_one_click", "checkout_apple_pay", "checkout_google_pay", "checkout_paypal",
    "checkout_new_address_form", "checkout_saved_cards", "checkout_guest_mode",
    "checkout_express_shipping", "checkout_gift_cards", "checkout_coupon_field",
    "checkout_upsell_modal", "checkout_tax_estimate", "checkout_klarna", "checkout_3ds_v2",
    "checkout_order_notes", "checkout_split_payment", "checkout_currency_picker",
    "checkout_fraud_screen", "checkout_progress_bar", "checkout_trust_badges",
    "checkout_cart_recovery", "checkout_address_autocomplete", "checkout_bnpl_banner",
    "checkout_redesign_2024",
]  # fmt: skip
_CHECKOUT_CONFIGS = [
    "checkout_payment_methods", "checkout_copy", "checkout_limits", "checkout_shipping_options",
    "checkout_upsell_params", "checkout_fraud_thresholds", "checkout_layout",
    "checkout_currency_settings", "checkout_bnpl_config", "checkout_trust_copy",
    "checkout_retry_policy", "checkout_receipt_settings",
]  # fmt: skip

_PASS_PERCENTAGES = [1, 2.5, 5, 10, 12.5, 20, 25, 30, 40, 50, 66.67, 75, 90, 99.9, 100]
_COUNTRY_SETS = [["US", "CA"], ["GB", "IE"], ["DE", "AT", "CH"], ["FR", "BE"], ["JP"], ["BR", "MX"]]
_ENV_SETS: list[list[str]] = [["staging"], ["development", "staging"], ["production"]]
_QA_USERS = ["u_123", "u_456", "u_789", "u_1001", "u_2002"]

_PEOPLE_NAMES = [
    ("Maya Chen", "maya.chen"),
    ("Jonas Weber", "jonas.weber"),
    ("Priya Raman", "priya.raman"),
    ("Tom Okafor", "tom.okafor"),
    ("Sofia Rossi", "sofia.rossi"),
    ("Liam Walsh", "liam.walsh"),
    ("Aiko Tanaka", "aiko.tanaka"),
    ("Diego Alvarez", "diego.alvarez"),
    ("Emma Larsen", "emma.larsen"),
    ("Noah Kim", "noah.kim"),
    ("Old Contractor", "contractor.2021"),
]
_METRICS = [
    ("purchase", "event_count"),
    ("checkout_conversion", "funnel"),
    ("revenue", "sum"),
    ("dau", "user"),
    ("session_length", "mean"),
    ("search_ctr", "ratio"),
    ("retention_d7", "user"),
]

_Person = dict[str, Any]
_Obj = dict[str, Any]


def demo_projects() -> list[tuple[Project, dict[str, KeyInfo]]]:
    """The demo's two projects (source, target) and their keys; deterministic."""
    source = _SourceBuilder(random.Random(SEED)).build()
    target = Project(id=DEMO_TARGET_ID, name="Demo Target (empty)")
    target.environments = copy.deepcopy(source.environments)
    return [
        (
            source,
            {
                DEMO_SOURCE_KEY: KeyInfo(source.id),
                DEMO_SOURCE_READ_ONLY_KEY: KeyInfo(source.id, read_only=True),
                DEMO_AUDITOR_KEY: KeyInfo(source.id, read_only=True),
            },
        ),
        (
            target,
            {
                DEMO_TARGET_KEY: KeyInfo(target.id),
                DEMO_TARGET_READ_ONLY_KEY: KeyInfo(target.id, read_only=True),
            },
        ),
    ]


def _json_copy(obj: Any) -> Any:
    # Stored objects are plain JSON: a JSON round trip copies them several times
    # faster than copy.deepcopy, which keeps the whole seed under a second.
    return json.loads(json.dumps(obj))


def _title(ident: str) -> str:
    return " ".join(word.capitalize() for word in ident.split("_"))


def _cond(ctype: str, operator: str | None = None, target: Any = None, **extra: Any) -> _Obj:
    cond: _Obj = {"type": ctype}
    if operator is not None:
        cond["operator"] = operator
    if target is not None:
        cond["targetValue"] = target
    cond.update(extra)
    return cond


class _SourceBuilder:
    """Builds the source project step by step; every draw comes from one seeded RNG."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.project = Project(id=DEMO_SOURCE_ID, name="Demo Source (Acme Shop)")
        self.project.environments = copy.deepcopy(DEFAULT_ENVIRONMENTS)
        self.people: list[_Person] = [
            {
                "id": "".join(
                    rng.choice("abcdefghijkLMNOPQRSTUVWXYZ0123456789") for _ in range(20)
                ),
                "name": name,
                "email": f"{handle}@acme.com",
            }
            for name, handle in _PEOPLE_NAMES
        ]
        self.console_api: _Person = {"id": "console_api", "name": "CONSOLE API", "email": None}
        # (timestamp, action type, change log, object id, name, person, tags)
        self.events: list[tuple[int, str, str, str, str, _Person, list[str]]] = []
        self.gate_ids: list[str] = []
        self.live_gates: list[str] = []  # neither archived nor templates: safe to reference
        self.segment_ids: list[str] = []
        self.groups_by_experiment: dict[str, list[str]] = {}

    # -- small draws -------------------------------------------------------------------

    def person(self) -> _Person:
        if self.rng.random() < 0.08:
            return self.console_api
        return self.rng.choice(self.people)

    def pct(self) -> float:
        return float(self.rng.choice(_PASS_PERCENTAGES))

    def times(self, *, idle_years: bool = False) -> tuple[int, int]:
        """(createdTime, lastModifiedTime) before BASE_MS; idle ones untouched for 2-4 years."""
        rng = self.rng
        if idle_years:
            modified = BASE_MS - rng.randint(730, 1460) * DAY_MS - rng.randint(0, DAY_MS)
            created = modified - rng.randint(0, 400) * DAY_MS
        else:
            created = BASE_MS - rng.randint(20, 1500) * DAY_MS - rng.randint(0, DAY_MS)
            modified = created + int((BASE_MS - created) * rng.random() ** 2)
        return created, modified

    def version(self) -> int:
        return self.rng.choices([1, 2, 3, 4, 5, 7], weights=[40, 25, 15, 10, 6, 4])[0]

    def metadata(
        self,
        obj_id: str,
        name: str,
        *,
        description: str,
        tags: list[str],
        id_type: str = "userID",
        idle_years: bool = False,
        owner: bool = True,
    ) -> _Obj:
        """The common metadata of a config object (``version`` and times drawn here)."""
        rng = self.rng
        created, modified = self.times(idle_years=idle_years)
        version = self.version()
        if version == 1:
            modified = created
        creator = self.person()
        modifier = creator if version == 1 else self.person()
        meta: _Obj = {
            "id": obj_id,
            "name": name,
            "description": description,
            "idType": id_type,
            "lastModifierID": modifier["id"],
            "lastModifiedTime": modified,
            "lastModifierEmail": modifier["email"],
            "lastModifierName": modifier["name"],
            "creatorID": creator["id"],
            "createdTime": created,
            "creatorName": creator["name"],
            "creatorEmail": creator["email"],
            "tags": tags,
        }
        meta["targetApps"] = (
            sorted(rng.sample(_TARGET_APPS, rng.randint(1, 2))) if rng.random() < 0.3 else []
        )
        meta["holdoutIDs"] = []
        meta["team"] = None
        meta["teamID"] = None
        if owner:
            meta["owner"] = {
                "ownerID": creator["id"],
                "ownerType": "SDK_KEY" if creator is self.console_api else "USER",
                "ownerName": creator["name"],
                "ownerEmail": creator["email"] or "",
            }
        meta["version"] = version
        return meta

    def changed_after_creation(self, meta: _Obj, *, at: int = 0) -> None:
        """Make ``meta`` a changed object: version 2 or more, last changed after creation."""
        meta["version"] = max(2, int(meta["version"]))
        created = int(meta["createdTime"])
        latest = max(int(meta["lastModifiedTime"]), at)
        if latest <= created:
            latest = min(BASE_MS, created + self.rng.randint(1, 30) * DAY_MS)
        meta["lastModifiedTime"] = latest

    def rule(
        self, name: str, pct: float, conditions: list[_Obj], envs: list[str] | None = None
    ) -> _Obj:
        base = new_base_id(self.rng)
        n = self.rng.choices([1, 2, 3], weights=[80, 15, 5])[0]
        return {
            "name": name,
            "passPercentage": float(pct),
            "conditions": conditions,
            "environments": envs,
            "id": rule_id(base, pct, n),
            "baseID": base,
        }

    def random_condition(self, refs: Sequence[str]) -> tuple[str, list[_Obj]]:
        """A (rule name, conditions) pair drawn from the condition types people use."""
        rng = self.rng
        kind = rng.randrange(14)
        if kind == 0 and refs:
            gate = rng.choice(refs)
            return f"Requires {gate}", [_cond("passes_gate", target=gate)]
        if kind == 1 and refs:
            gate = rng.choice(refs)
            # A few rules carry the one-element array form the terraform provider sends.
            target: Any = [gate] if rng.random() < 0.2 else gate
            return f"Not in {gate}", [_cond("fails_gate", target=target)]
        if kind == 2:
            seg = rng.choice(self.segment_ids)
            return f"Segment {seg}", [_cond("passes_segment", target=seg)]
        if kind == 3:
            seg = rng.choice(self.segment_ids)
            return f"Exclude {seg}", [_cond("fails_segment", target=seg)]
        if kind == 4:
            return "Employees", [_cond("email", "str_contains_any", ["@acme.com"])]
        if kind == 5:
            users = sorted(rng.sample(_QA_USERS, rng.randint(1, 3)))
            return "QA users", [_cond("user_id", "any", users)]
        if kind == 6:
            countries = rng.choice(_COUNTRY_SETS)
            return f"Countries {' '.join(countries)}", [_cond("country", "any", countries)]
        if kind == 7:
            plans = rng.choice([["pro"], ["pro", "enterprise"], ["enterprise"]])
            return f"Plan {'+'.join(plans)}", [
                _cond("custom_field", "any", plans, field="plan"),
            ]
        if kind == 8:
            age = rng.choice([13, 17, 21])
            return f"Older than {age}", [_cond("custom_field", "gt", age, field="age")]
        if kind == 9:
            version = f"{rng.randint(3, 6)}.{rng.randint(0, 9)}.0"
            return f"App {version}+", [_cond("app_version", "version_gte", [version])]
        if kind == 10:
            os_name = rng.choice(["iOS", "Android"])
            return f"{os_name} only", [_cond("os_name", "any", [os_name])]
        if kind == 11:
            companies = [f"co_{rng.randint(100, 999)}" for _ in range(rng.randint(1, 4))]
            return "Enterprise companies", [
                _cond("unit_id", "any", companies, customID="companyID"),
            ]
        if kind == 12:
            return "Non-production", [
                _cond("environment_tier", "any", ["development", "staging"]),
            ]
        return "Everyone", [_cond("public")]

    def random_rules(
        self, count: int, refs: Sequence[str], *, pct: float | None = None
    ) -> list[_Obj]:
        rules: list[_Obj] = []
        names: set[str] = set()
        for _ in range(count):
            name, conditions = self.random_condition(refs)
            if self.rng.random() < 0.15:  # AND-ed conditions
                conditions = conditions + self.random_condition(refs)[1]
            if name in names:
                name = f"{name} ({len(rules) + 1})"
            names.add(name)
            envs = self.rng.choice(_ENV_SETS) if self.rng.random() < 0.15 else None
            rules.append(self.rule(name, self.pct() if pct is None else pct, conditions, envs))
        return rules

    def tags_for(self, ident: str) -> list[str]:
        area = ident.split("_", 1)[0]
        tags = list(_AREA_TAGS.get(area, []))
        if self.rng.random() < 0.12:
            tags.append(self.rng.choice(["deprecated", "q3-launch", "kill-switch", "infra"]))
        if self.rng.random() < 0.03:
            tags.append("★ Core")
        return sorted(set(tags))

    def describe(self, ident: str) -> str:
        if self.rng.random() < 0.25:
            return ""
        purpose = self.rng.choice(
            [
                "rollout of the new behaviour",
                "kill switch, keep on unless paged",
                "experiment follow-up, clean up after launch",
                "temporary: remove after the migration",
                "requested by support",
                "legacy flag from the 2022 rewrite",
            ]
        )
        return f"{_title(ident)}: {purpose}"

    def event(
        self,
        ts: int,
        action: str,
        change_log: str,
        obj: _Obj,
        person: _Person | None = None,
    ) -> None:
        who = person or {
            "id": obj.get("lastModifierID") or "console_api",
            "name": obj.get("lastModifierName") or "CONSOLE API",
            "email": obj.get("lastModifierEmail"),
        }
        name = str(obj.get("name") or obj["id"])
        self.events.append(
            (ts, action, change_log, str(obj["id"]), name, who, list(obj.get("tags") or []))
        )

    # -- sections ----------------------------------------------------------------------

    def build(self) -> Project:
        self.build_tags()
        self.build_unit_id_types()
        self.build_target_apps()
        self.build_segments()
        self.build_gates()
        self.build_dynamic_configs()
        self.build_layers_and_experiments()
        self.build_holdout()
        self.require_review_on_some_stale_gates()
        self.build_histories()
        return self.project

    def build_tags(self) -> None:
        tags = self.project.store("tags")
        for name, description, core in _TAGS:
            tag_id = new_base_id(self.rng)
            tags[tag_id] = {"id": tag_id, "name": name, "description": description, "isCore": core}
            ts = BASE_MS - self.rng.randint(900, 1600) * DAY_MS
            self.event(ts, "tag_create", "Created Tag", tags[tag_id], self.rng.choice(self.people))

    def build_unit_id_types(self) -> None:
        store = self.project.store("unit_id_types")
        for name, description in _UNIT_ID_TYPES:
            store[name] = {"name": name, "description": description}

    def build_target_apps(self) -> None:
        # Configs list target apps by name (the spec's examples); the ids equal the names,
        # so either reading of `targetApps` resolves.
        store = self.project.store("target_apps")
        for name in _TARGET_APPS:
            store[name] = {"id": name, "name": name}

    def build_segments(self) -> None:
        rng = self.rng
        project = self.project
        store = project.store("segments")
        id_list_specs: list[tuple[str, int, str]] = [
            ("beta_testers", 180, "userID"),
            ("beta_testers_v2", 1200, "userID"),
            ("internal_employees", 75, "userID"),
            ("fraud_blocklist", 3500, "userID"),
            ("vip_customers", 400, "userID"),
            ("churn_risk_q2", 2500, "userID"),
            ("support_escalations", 40, "userID"),
            ("early_access_2023", 900, "userID"),
            ("press_accounts", 12, "userID"),
            ("load_test_users", 4000, "userID"),
            ("enterprise_pilot", 25, "companyID"),
            ("enterprise_accounts", 300, "companyID"),
            ("test_devices", 60, "deviceID"),
            ("kiosk_devices", 150, "deviceID"),
            ("partner_orgs", 8, "orgID"),
            ("billing_migration_batch1", 1000, "accountID"),
            ("billing_migration_batch2", 1000, "accountID"),
            ("legacy_plan_holders", 2000, "userID"),
            ("holiday_promo_2024", 600, "userID"),
            ("app_store_reviewers", 5, "userID"),
            ("gdpr_opt_out", 1500, "userID"),
            ("design_partners", 30, "userID"),
        ]
        for seg_id, size, id_type in id_list_specs:
            prefix = {"userID": "u_", "companyID": "co_", "deviceID": "dev_", "orgID": "org_"}.get(
                id_type, "acct_"
            )
            ids = [f"{prefix}{n}" for n in sorted(rng.sample(range(1000, 1_000_000), size))]
            if seg_id.startswith("beta_testers"):
                ids = ["u_123", "u_456", *ids[:-2]]
            if seg_id == "internal_employees":
                ids = [*_QA_USERS, *ids[: size - len(_QA_USERS)]]
            seg = self.segment_shell(seg_id, "id_list", id_type)
            seg["count"] = len(ids)
            store[seg_id] = seg
            project.id_lists[seg_id] = dict.fromkeys(ids)
            self.segment_ids.append(seg_id)

        rule_based: list[tuple[str, list[tuple[str, list[_Obj]]]]] = [
            ("power_users", [("Heavy usage", [_cond("custom_field", "gt", 20, field="sessions_per_week")])]),
            ("eu_users", [("EU countries", [_cond("country", "any", ["DE", "FR", "IT", "ES", "NL", "IE", "AT", "BE"])])]),
            ("power_users_eu", [("Power users in the EU", [_cond("passes_segment", target="power_users"), _cond("passes_segment", target="eu_users")])]),
            ("staff_and_testers", [("Staff", [_cond("email", "str_contains_any", ["@acme.com"])]), ("Testers", [_cond("passes_segment", target="beta_testers")])]),
            ("new_signups", [("Signed up recently", [_cond("custom_field", "after", BASE_MS - 30 * DAY_MS, field="signup_date")])]),
            ("ios_latest", [("iOS 17+", [_cond("os_name", "any", ["iOS"]), _cond("os_version", "version_gte", ["17.0"])])]),
            ("android_legacy", [("Old Android", [_cond("os_name", "any", ["Android"]), _cond("app_version", "version_lt", ["4.0.0"])])]),
            ("chrome_desktop", [("Chrome", [_cond("browser_name", "any", ["Chrome"])])]),
            ("pro_plan", [("Pro", [_cond("custom_field", "any", ["pro", "enterprise"], field="plan")])]),
            ("not_blocked", [("Not on the blocklist", [_cond("fails_segment", target="fraud_blocklist")])]),
            ("qa_accounts", [("QA ids", [_cond("user_id", "any", ["u_123", "u_456"])]), ("QA mail", [_cond("email", "any", ["qa@acme.com", "qa+1@acme.com"])])]),
            ("us_only", [("US", [_cond("country", "any", ["US"])])]),
            ("enterprise_companies", [("Named companies", [_cond("unit_id", "any", ["co_1001", "co_1002"], customID="companyID")])]),
            ("staging_traffic", [("Staging", [_cond("environment_tier", "any", ["staging"])])]),
            ("office_network", [("Office IPs", [_cond("ip_address", "any", ["10.0.0.1", "10.0.0.2"])])]),
            ("high_value_carts", [("Cart over 200", [_cond("custom_field", "gt", 200, field="cart_value")])]),
            ("teen_users", [("13 to 17", [_cond("custom_field", "gt", 12, field="age"), _cond("custom_field", "lt", 18, field="age")])]),
            ("beta_or_vip", [("Beta", [_cond("passes_segment", target="beta_testers_v2")]), ("VIP", [_cond("passes_segment", target="vip_customers")])]),
        ]  # fmt: skip
        for seg_id, rules in rule_based:
            seg = self.segment_shell(seg_id, "rule_based", "userID")
            seg["rules"] = [
                self.rule(name, 100 if rng.random() < 0.8 else self.pct(), conds)
                for name, conds in rules
            ]
            store[seg_id] = seg
            self.segment_ids.append(seg_id)

    def segment_shell(self, seg_id: str, seg_type: str, id_type: str) -> _Obj:
        meta = self.metadata(
            seg_id,
            seg_id,
            description=self.describe(seg_id),
            tags=["payments"] if seg_id.startswith(("beta", "fraud", "billing")) else [],
            id_type=id_type,
            owner=False,
        )
        return {"isEnabled": self.rng.random() < 0.95, "type": seg_type, **meta}

    def gate_names(self) -> list[str]:
        rng = self.rng
        used = set(_CHECKOUT_GATES)
        names = list(_CHECKOUT_GATES)
        while len(names) < N_GATES:
            base = f"{rng.choice(_AREAS)}_{rng.choice(_FEATURES)}"
            candidates = [base] + [f"{base}_{s}" for s in rng.sample(_SUFFIXES, 3)]
            name = next((c for c in candidates if c not in used), f"{base}_{len(names)}")
            used.add(name)
            names.append(name)
        return names

    def gate_profiles(self) -> list[tuple[str, str, str]]:
        """(type, typeReason, status) for every generic gate, shuffled."""
        rng = self.rng
        profiles: list[tuple[str, str, str]] = []
        stale_status = {
            "STALE_PROBABLY_LAUNCHED": ["Launched"] * 4 + ["In Progress"],
            "STALE_PROBABLY_UNLAUNCHED": ["In Progress"] * 3 + ["Disabled"],
            "STALE_PROBABLY_FORGOTTEN": ["In Progress", "Launched", "Disabled"],
            "STALE_NO_RULES": ["In Progress"] * 4 + ["Disabled"],
            "STALE_PROBABLY_DEAD_CHECK": ["In Progress", "Launched"],
        }
        for reason, count in _STALE_REASONS.items():
            profiles += [("STALE", reason, rng.choice(stale_status[reason])) for _ in range(count)]
        permanent = ["Launched"] * 6 + ["In Progress"] * 3 + ["Disabled", "Archived"]
        profiles += [("PERMANENT", "NONE", rng.choice(permanent)) for _ in range(_N_PERMANENT)]
        profiles += [("TEMPLATE", "NONE", "In Progress") for _ in range(_N_TEMPLATE)]
        temporary = ["In Progress"] * 11 + ["Launched"] * 4 + ["Disabled"] * 2 + ["Archived"] * 3
        while len(profiles) < N_GATES - len(_CHECKOUT_GATES):
            profiles.append(("TEMPORARY", "NONE", rng.choice(temporary)))
        rng.shuffle(profiles)
        return profiles

    def build_gates(self) -> None:
        rng = self.rng
        store = self.project.store("gates")
        names = self.gate_names()
        profiles = [("TEMPORARY", "NONE", "In Progress")] * len(
            _CHECKOUT_GATES
        ) + self.gate_profiles()
        custom_types = [name for name, _ in _UNIT_ID_TYPES]
        for index, (gate_id, (gtype, reason, status)) in enumerate(
            zip(names, profiles, strict=True)
        ):
            checkout = gate_id.startswith("checkout_")
            if checkout:
                gtype = rng.choice(["TEMPORARY", "TEMPORARY", "PERMANENT"])
                status = rng.choice(["In Progress", "In Progress", "Launched"])
            id_type = "userID"
            roll = rng.random()
            if roll < 0.08:
                id_type = "stableID"
            elif roll < 0.14:
                id_type = rng.choice(custom_types)
            tags = (
                ["payments", *rng.sample(["web", "mobile"], rng.randint(0, 1))]
                if checkout
                else self.tags_for(gate_id)
            )
            meta = self.metadata(
                gate_id,
                _title(gate_id) if rng.random() < 0.25 else gate_id,
                description=self.describe(gate_id),
                tags=sorted(tags),
                id_type=id_type,
                idle_years=reason == "STALE_PROBABLY_FORGOTTEN" or rng.random() < 0.05,
            )
            if status in ("Disabled", "Archived"):  # it was live before that
                self.changed_after_creation(meta)
            if checkout:
                rules = self.checkout_gate_rules(index)
            elif reason == "STALE_NO_RULES":
                rules = []
            elif reason == "STALE_PROBABLY_UNLAUNCHED":
                rules = self.random_rules(rng.randint(1, 2), self.live_gates, pct=0)
            elif reason == "STALE_PROBABLY_LAUNCHED" or (
                status == "Launched" and rng.random() < 0.5
            ):
                rules = [self.rule("Everyone", 100, [_cond("public")])]
                rules += self.random_rules(rng.randint(0, 1), self.live_gates)
                if len(rules) == 2 and rules[1]["name"] == "Everyone":
                    rules[1]["name"] = "Everyone (old)"
            else:
                rules = self.random_rules(rng.choice([1, 1, 2, 2, 3, 4]), self.live_gates)
            gate: _Obj = {
                **meta,
                "checksPerHour": 0
                if reason == "STALE_PROBABLY_DEAD_CHECK"
                else rng.choice([0, 3, 40, 1200, 56000]),
                "status": status,
                "type": gtype,
                "typeReason": reason,
                "isTemplate": gtype == "TEMPLATE",
                "isEnabled": status != "Disabled",
                "rules": rules,
                "measureMetricLifts": rng.random() < 0.8,
                "monitoringMetrics": [
                    {"name": m, "type": t} for m, t in rng.sample(_METRICS, rng.randint(0, 2))
                ],
                "reviewSettings": {"requiredReview": False, "allowedReviewers": None},
                "releasePipelineID": None,
            }
            store[gate_id] = gate
            self.gate_ids.append(gate_id)
            if status != "Archived" and gtype != "TEMPLATE":
                self.live_gates.append(gate_id)
        self.reference_stale_gates()
        self.build_gate_overrides()

    def checkout_gate_rules(self, index: int) -> list[_Obj]:
        """The rules the rewrite examples work on: Rollout/Temp/Old name, beta_testers, u_123."""
        rng = self.rng
        rules = [self.rule(f"Rollout {self.pct():g}%", self.pct(), [_cond("public")])]
        if index % 3 != 2:
            rules.insert(
                0, self.rule("Old name", 100, [_cond("passes_segment", target="beta_testers")])
            )
        if index % 2 == 0:
            rules.insert(
                0, self.rule("Temp allowlist", 100, [_cond("user_id", "any", ["u_123", "u_456"])])
            )
        if index % 4 in (1, 2):
            mails = rng.choice([["qa@acme.com"], ["qa@acme.com", "payments-oncall@acme.com"]])
            rules.insert(
                0,
                self.rule(
                    "Temp QA mail", 100, [_cond("email", "any", mails)], rng.choice(_ENV_SETS[:2])
                ),
            )
        if index % 5 == 0:
            rules.append(
                self.rule(
                    "Temp staff",
                    50,
                    [
                        _cond("email", "str_contains_any", ["@acme.com"]),
                        _cond("fails_segment", target="fraud_blocklist"),
                    ],
                )
            )
        if index % 6 == 3:
            rules.append(
                self.rule(
                    "Beta testers EU",
                    100,
                    [
                        _cond("passes_segment", target="beta_testers"),
                        _cond("country", "any", ["DE", "FR"]),
                    ],
                )
            )
        return rules

    def reference_stale_gates(self) -> None:
        """Make 40 live STALE gates still referenced by later gates (archive must skip them)."""
        rng = self.rng
        store = self.project.store("gates")
        position = {gate_id: i for i, gate_id in enumerate(self.gate_ids)}
        stale = [
            g
            for g in self.live_gates
            if store[g]["type"] == "STALE" and position[g] < N_GATES - 200
        ]
        for gate_id in rng.sample(stale, 40):
            later = [
                g
                for g in self.live_gates
                if position[g] > position[gate_id] and store[g]["type"] != "STALE"
            ]
            for referrer in rng.sample(later, rng.randint(1, 2)):
                rules = store[referrer]["rules"]
                if any(r["name"] == f"Requires {gate_id}" for r in rules):
                    continue
                rules.append(
                    self.rule(f"Requires {gate_id}", 100, [_cond("passes_gate", target=gate_id)])
                )

    def require_review_on_some_stale_gates(self) -> None:
        """The last :data:`REVIEW_GATES` live stale gates (by id) that are in progress,
        that nothing references, that reference no gate, that have no overrides and that
        the examples do not use require review: archiving them opens reviews, copying
        them as they are opens none."""
        from .common import referenced_ids
        from .handlers.gates import gate_references

        store = self.project.store("gates")
        overridden = self.project.overrides["gates"]
        picked = [
            gate_id
            for gate_id in sorted(self.live_gates, reverse=True)
            if store[gate_id]["type"] == "STALE"
            and store[gate_id]["status"] == "In Progress"
            and gate_id not in overridden
            and not gate_id.startswith("checkout_")
            and "payments" not in (store[gate_id].get("tags") or [])
            and not any(referenced_ids(store[gate_id]["rules"], "gate"))
            and not any(gate_references(self.project, gate_id, live_only=True))
        ][:REVIEW_GATES]
        for gate_id in picked:
            store[gate_id]["reviewSettings"] = {"requiredReview": True, "allowedReviewers": None}

    def build_gate_overrides(self) -> None:
        rng = self.rng
        store = self.project.store("gates")
        overrides = self.project.overrides["gates"]
        chosen = self.live_gates[: len(_CHECKOUT_GATES)] + rng.sample(
            self.live_gates[len(_CHECKOUT_GATES) :], 60
        )
        for gate_id in chosen:
            id_type = store[gate_id]["idType"]
            users = [f"u_{rng.randint(1000, 99999)}" for _ in range(rng.randint(0, 6))]
            entry: _Obj = {
                "passingUserIDs": sorted({*users, "u_123"})
                if rng.random() < 0.4
                else sorted(set(users)),
                "failingUserIDs": sorted(
                    {f"u_{rng.randint(1000, 99999)}" for _ in range(rng.randint(0, 3))}
                ),
                "environmentOverrides": [],
            }
            if id_type not in ("userID", "stableID"):
                entry["passingCustomIDs"] = [f"{id_type[:3].lower()}_{rng.randint(100, 999)}"]
                entry["failingCustomIDs"] = []
            if rng.random() < 0.4:
                entry["environmentOverrides"].append(
                    {
                        "environment": rng.choice(["staging", "development", None]),
                        "unitID": id_type,
                        "passingIDs": [f"u_{rng.randint(1000, 9999)}" for _ in range(2)],
                        "failingIDs": [],
                    }
                )
            overrides[gate_id] = entry
            ts = store[gate_id]["lastModifiedTime"]
            self.event(ts, "gate_overrides_update", "Updated Overrides", store[gate_id])

    def build_dynamic_configs(self) -> None:
        rng = self.rng
        store = self.project.store("dynamic_configs")
        gates = self.project.store("gates")
        stale_refs = [g for g in self.live_gates if gates[g]["type"] == "STALE"]
        checkout_gates = [g for g in self.live_gates if g.startswith("checkout_")]
        names = list(_CHECKOUT_CONFIGS)
        used = set(names)
        while len(names) < N_DYNAMIC_CONFIGS:
            name = f"{rng.choice(_AREAS)}_{rng.choice(_CONFIG_KINDS)}"
            if name in used:
                name = f"{name}_{rng.choice(_SUFFIXES)}"
            if name not in used:
                used.add(name)
                names.append(name)
        for index, config_id in enumerate(names):
            checkout = config_id.startswith("checkout_")
            status = (
                "Enabled" if checkout else rng.choice(["Enabled"] * 8 + ["Disabled", "Archived"])
            )
            tags = ["payments"] if checkout else self.tags_for(config_id)
            meta = self.metadata(
                config_id,
                _title(config_id) if rng.random() < 0.2 else config_id,
                description=self.describe(config_id),
                tags=tags,
                idle_years=rng.random() < 0.1,
            )
            if status in ("Disabled", "Archived"):
                self.changed_after_creation(meta)
            default, make_value, schema = self.value_shape(config_id)
            if checkout:
                rules = [
                    self.rule(
                        "Temp beta testers", 100, [_cond("passes_segment", target="beta_testers")]
                    ),
                    self.rule(
                        f"Rollout {self.pct():g}%",
                        self.pct(),
                        [_cond("passes_gate", target=checkout_gates[index % len(checkout_gates)])],
                    ),
                ]
                if index % 2 == 0:
                    rules.insert(
                        0, self.rule("Old name", 100, [_cond("user_id", "any", ["u_123", "u_456"])])
                    )
            else:
                rules = self.random_rules(rng.choice([0, 1, 1, 2, 3]), self.live_gates)
                if index % 9 == 0:
                    stale = rng.choice(stale_refs)
                    rules.append(
                        self.rule(f"Requires {stale}", 100, [_cond("passes_gate", target=stale)])
                    )
            for rule in rules:
                value = make_value()
                rule["returnValue"] = value
                rule["returnValueJson5"] = json.dumps(value)
            store[config_id] = {
                **meta,
                "isEnabled": status != "Disabled",
                "rules": rules,
                "defaultValue": default,
                "defaultValueJson5": json.dumps(default),
                "schema": schema,
                "schemaJson5": schema,
                "releasePipelineID": None,
                "isTemplate": False,
                "status": status,
            }

    def value_shape(self, config_id: str) -> tuple[_Obj, Callable[[], _Obj], str | None]:
        """A default value, a maker of rule return values of the same shape, and maybe a schema."""
        rng = self.rng
        shape = rng.randrange(4)
        schema: _Obj | None = None
        if shape == 0:
            default: _Obj = {"enabled": False, "limit": 10}

            def make() -> _Obj:
                return {"enabled": True, "limit": rng.choice([5, 20, 50, 100])}

            schema = {"enabled": "boolean", "limit": "integer"}
        elif shape == 1:
            default = {"title": f"{_title(config_id)}", "cta": "Continue"}

            def make() -> _Obj:
                return {
                    "title": f"{_title(config_id)} (new)",
                    "cta": rng.choice(["Buy now", "Next", "Go"]),
                }

            schema = {"title": "string", "cta": "string"}
        elif shape == 2:
            default = {"variant": "control", "weights": [1, 1, 1]}

            def make() -> _Obj:
                return {
                    "variant": rng.choice(["a", "b", "c"]),
                    "weights": [rng.randint(1, 5) for _ in range(3)],
                }

        else:
            default = {
                "timeout_ms": 2000,
                "retries": 2,
                "endpoints": {"primary": "us-east", "fallback": "eu-west"},
            }

            def make() -> _Obj:
                return {
                    "timeout_ms": rng.choice([500, 1000, 5000]),
                    "retries": rng.randint(0, 4),
                    "endpoints": {"primary": "eu-west", "fallback": "us-east"},
                }

        text: str | None = None
        if schema is not None and rng.random() < 0.5:
            text = json.dumps(
                {
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "type": "object",
                    "properties": {k: {"type": v} for k, v in schema.items()},
                }
            )
        return default, make, text

    def build_layers_and_experiments(self) -> None:
        rng = self.rng
        project = self.project
        layers = project.store("layers")
        experiments = project.store("experiments")
        gates = project.store("gates")
        layer_specs: dict[str, list[tuple[str, str, Any]]] = {
            "Checkout Layer": [("button_color", "string", "blue"), ("show_upsell", "boolean", False), ("free_shipping_threshold", "number", 50)],
            "Search Ranking Layer": [("ranker", "string", "bm25"), ("boost_recent", "boolean", False), ("page_size", "number", 20)],
            "Onboarding Layer": [("steps", "array", ["welcome", "profile", "done"]), ("skip_allowed", "boolean", True)],
            "Homepage Layer": [("hero", "object", {"image": "default.webp", "headline": "Welcome"}), ("carousel_items", "number", 8)],
            "Pricing Layer": [("anchor_price", "number", 99), ("show_annual_toggle", "boolean", True), ("plan_order", "array", ["basic", "pro", "enterprise"])],
        }  # fmt: skip
        for name, params in layer_specs.items():
            layer_id = name.lower().replace(" ", "_")
            meta = self.metadata(
                layer_id,
                name,
                description=f"{name}: experiments share its traffic",
                tags=self.tags_for(layer_id),
                owner=False,
            )
            layers[layer_id] = {
                **meta,
                "isImplicitLayer": False,
                "parameters": [{"name": p, "type": t, "defaultValue": v} for p, t, v in params],
            }

        stale_live = [g for g in self.live_gates if gates[g]["type"] == "STALE"]
        checkout_live = [g for g in self.live_gates if g.startswith("checkout_")]
        # (id, layer name or None for an implicit layer, status, targeting gate)
        specs: list[tuple[str, str | None, str, str | None]] = [
            ("checkout_button_color", "Checkout Layer", "active", checkout_live[0]),
            ("checkout_upsell_test", "Checkout Layer", "setup", checkout_live[1]),
            ("checkout_free_shipping_threshold", "Checkout Layer", "decision_made", None),
            ("search_ranker_v3", "Search Ranking Layer", "active", stale_live[0]),
            ("search_recency_boost", "Search Ranking Layer", "decision_made", None),
            ("onboarding_short_flow", "Onboarding Layer", "active", None),
            ("onboarding_skip_button", "Onboarding Layer", "setup", stale_live[1]),
            ("homepage_hero_refresh", "Homepage Layer", "active", self.live_gates[200]),
            ("homepage_carousel_size", "Homepage Layer", "abandoned", None),
            ("pricing_anchor_test", "Pricing Layer", "active", stale_live[2]),
            ("pricing_annual_toggle", "Pricing Layer", "setup", None),
            ("referral_bonus_amount", None, "active", self.live_gates[300]),
            ("push_optin_timing", None, "decision_made", stale_live[3]),
            ("email_digest_frequency", None, "setup", None),
        ]
        layer_allocated: dict[str, float] = {}
        for exp_id, layer_name, status, targeting in specs:
            if layer_name is None:
                layer_id = f"statsig::{exp_id}_layer"
                params = [("value", "string", "control")]
                meta = self.metadata(layer_id, layer_id, description="", tags=[], owner=False)
                layers[layer_id] = {
                    **meta,
                    "isImplicitLayer": True,
                    "parameters": [{"name": p, "type": t, "defaultValue": v} for p, t, v in params],
                }
            else:
                layer_id = layer_name.lower().replace(" ", "_")
            layer = layers[layer_id]
            allocation = min(
                float(rng.choice([10, 20, 25, 50, 100])), 100.0 - layer_allocated.get(layer_id, 0.0)
            )
            layer_allocated[layer_id] = layer_allocated.get(layer_id, 0.0) + allocation
            experiments[exp_id] = self.experiment(exp_id, layer, status, targeting, allocation)
            self.build_experiment_overrides(exp_id)
        self.build_layer_overrides()

    def experiment(
        self, exp_id: str, layer: _Obj, status: str, targeting: str | None, allocation: float
    ) -> _Obj:
        rng = self.rng
        meta = self.metadata(
            exp_id, exp_id, description=self.describe(exp_id), tags=self.tags_for(exp_id)
        )
        names = ["Control", "Test"] if rng.random() < 0.6 else ["Control", "Test A", "Test B"]
        sizes = [round(100 / len(names), 2)] * len(names)
        sizes[0] = round(100 - sum(sizes[1:]), 2)
        groups: list[_Obj] = []
        for i, group_name in enumerate(names):
            values = {
                p["name"]: (p["defaultValue"] if i == 0 else self.variant_value(p))
                for p in layer["parameters"]
            }
            groups.append(
                {
                    "name": group_name,
                    "id": new_base_id(rng),
                    "size": sizes[i],
                    "parameterValues": values,
                    "disabled": False,
                    "description": "" if i == 0 else f"{group_name} variant",
                }
            )
        self.groups_by_experiment[exp_id] = names
        created = int(meta["createdTime"])
        started = created + rng.randint(1, 10) * DAY_MS if status != "setup" else None
        ended = (
            min(BASE_MS, int(started) + rng.randint(14, 40) * DAY_MS)
            if started is not None and status in ("decision_made", "abandoned")
            else None
        )
        if started is not None:  # starting (and deciding) changed the experiment
            self.changed_after_creation(meta, at=ended or started)
        launched = groups[rng.randrange(len(groups))]["id"] if status == "decision_made" else None
        reason = {
            "decision_made": "Shipped the winner: clear lift on the primary metric",
            "abandoned": "Instrumentation bug; restarting as a new experiment",
        }.get(status)
        primary = [
            {"name": m, "type": t, "direction": "increase"} for m, t in rng.sample(_METRICS, 1)
        ]
        secondary = [{"name": m, "type": t} for m, t in rng.sample(_METRICS, rng.randint(0, 3))]
        return {
            **meta,
            "hypothesis": f"Changing {_title(exp_id).lower()} improves {primary[0]['name']}",
            "groups": groups,
            "controlGroupID": groups[0]["id"],
            "allocation": allocation,
            "primaryMetrics": primary,
            "secondaryMetrics": secondary,
            "primaryMetricTags": [],
            "secondaryMetricTags": [],
            "duration": rng.choice([14, 21, 28]),
            "targetingGateID": targeting,
            "sequentialTesting": rng.random() < 0.3,
            "bonferroniCorrection": rng.random() < 0.2,
            "defaultConfidenceInterval": rng.choice(["95", "95", "90", "99"]),
            "status": status,
            "launchedGroupID": launched,
            "decisionReason": reason,
            "layerID": layer["id"],
            "startTime": started,
            "endTime": ended,
            "decisionTime": ended if status == "decision_made" else None,
            "healthCheckStatus": "WAITING"
            if status == "setup"
            else rng.choice(["PASSED", "PASSED", "WARNING"]),
            "healthChecks": [],
            "inlineTargetingRulesJSON": None,
            "analyticsType": "frequentist",
        }

    def variant_value(self, param: _Obj) -> Any:
        rng = self.rng
        kind = param["type"]
        if kind == "string":
            return rng.choice(["green", "orange", "neural", "v2", "treatment"])
        if kind == "boolean":
            return not param["defaultValue"]
        if kind == "number":
            return param["defaultValue"] * rng.choice([2, 3]) if param["defaultValue"] else 1
        if kind == "array":
            return list(reversed(param["defaultValue"]))
        return {**param["defaultValue"], "headline": "Fresh deals every day"}

    def build_experiment_overrides(self, exp_id: str) -> None:
        rng = self.rng
        if rng.random() < 0.35:
            return
        names = self.groups_by_experiment[exp_id]
        entry: _Obj = {
            "overrides": [],
            "userIDOverrides": [
                {
                    "groupID": names[-1],
                    "ids": ["u_123", "u_456"],
                    "environment": None,
                    "unitType": "userID",
                },
                {
                    "groupID": names[0],
                    "ids": [f"u_{rng.randint(1000, 9999)}" for _ in range(rng.randint(1, 5))],
                    "environment": "staging",
                    "unitType": "userID",
                },
            ],
        }
        if rng.random() < 0.6:
            entry["overrides"].append(
                {
                    "type": "segment",
                    "id": "internal_employees",
                    "groupID": names[-1],
                    "environment": None,
                }
            )
        if rng.random() < 0.4:
            entry["overrides"].append(
                {
                    "type": "gate",
                    "id": rng.choice(self.live_gates),
                    "groupID": names[0],
                    "environment": "staging",
                }
            )
        self.project.overrides["experiments"][exp_id] = entry

    def build_layer_overrides(self) -> None:
        experiments = self.project.store("experiments")
        overrides = self.project.overrides["layers"]
        for layer_id in ("checkout_layer", "search_ranking_layer", "homepage_layer"):
            exp_id = next(e for e, x in experiments.items() if x["layerID"] == layer_id)
            groups = self.groups_by_experiment[exp_id]
            overrides[layer_id] = {
                "conditionalOverrides": [
                    {
                        "type": "segment",
                        "name": "internal_employees",
                        "experimentName": exp_id,
                        "groupName": groups[-1],
                    },
                ],
                "idOverrides": [
                    {
                        "groupName": groups[-1],
                        "ids": ["u_123", "u_456"],
                        "idType": "userID",
                        "environment": None,
                        "experimentName": exp_id,
                    },
                ],
            }
        overrides["checkout_layer"]["conditionalOverrides"].append(
            {
                "type": "gate",
                "name": "checkout_one_click",
                "experimentName": "checkout_button_color",
                "groupName": "Control",
            }
        )

    def build_holdout(self) -> None:
        rng = self.rng
        project = self.project
        gates = project.store("gates")
        experiments = project.store("experiments")
        layers = project.store("layers")
        meta = self.metadata(
            "global_holdout_2025",
            "Global Holdout 2025",
            description="Measures the cumulative impact of everything shipped in 2025",
            tags=["experimentation"],
            owner=False,
        )
        meta["targetApps"] = []
        gate_ids = sorted(
            rng.sample([g for g in self.live_gates if not g.startswith("checkout_")], 6)
        )
        exp_ids = ["homepage_hero_refresh", "pricing_anchor_test"]
        layer_ids = ["onboarding_layer"]
        project.store("holdouts")["global_holdout_2025"] = {
            **meta,
            "isEnabled": True,
            "passPercentage": 5.0,
            "gateIDs": gate_ids,
            "experimentIDs": exp_ids,
            "layerIDs": layer_ids,
            "isGlobal": False,
            "targetingGateID": None,
            "monitoringMetrics": [{"name": "revenue", "type": "sum"}],
        }
        for store, ids in ((gates, gate_ids), (experiments, exp_ids), (layers, layer_ids)):
            for obj_id in ids:
                store[obj_id]["holdoutIDs"] = ["global_holdout_2025"]
        project.overrides["holdouts"]["global_holdout_2025"] = {
            "passingUserIDs": ["u_123"],
            "failingUserIDs": ["u_456", "u_789"],
            "environmentOverrides": [
                {
                    "environment": "staging",
                    "unitID": "userID",
                    "passingIDs": ["u_1001"],
                    "failingIDs": [],
                }
            ],
        }

    # -- versions and the audit log ----------------------------------------------------

    def build_histories(self) -> None:
        """Version histories (versions 1..n, the last equal to the object) and audit entries."""
        project = self.project
        created_action = {
            "gates": "gate_create",
            "dynamic_configs": "dynamic_config_create",
            "segments": "segment_create",
            "experiments": "experiment_create",
            "layers": "layer_create",
            "holdouts": "holdout_create",
        }
        label = {
            "gates": "Gate",
            "dynamic_configs": "Dynamic Config",
            "segments": "Segment",
            "experiments": "Experiment",
            "layers": "Layer",
            "holdouts": "Holdout",
        }
        for kind, action in created_action.items():
            history = project.versions.setdefault(kind, {})
            for obj_id, obj in project.store(kind).items():
                history[obj_id] = self.versions_of(kind, obj)
                self.event(
                    int(obj["createdTime"]),
                    action,
                    f"Created {label[kind]}",
                    obj,
                    self.creator_of(obj),
                )
                self.history_events(kind, obj)
        self.events.sort(key=lambda e: (e[0], e[3], e[1]))
        for ts, action, change_log, obj_id, name, who, tags in self.events:
            entry = project.audit(action, obj_id, name, now_ms=ts, tags=tags)
            entry["changeLog"] = change_log
            entry["updatedBy"] = who["name"] or "CONSOLE API"
            entry["updatedByUserID"] = who["id"]
            entry["modifierEmail"] = who["email"]

    def versions_of(self, kind: str, obj: _Obj) -> list[_Obj]:
        count = int(obj["version"])
        created, modified = int(obj["createdTime"]), int(obj["lastModifiedTime"])
        rules = obj.get("rules")
        # A disabled or archived config was live before its last change.
        before: _Obj = {}
        if kind in ("gates", "dynamic_configs") and obj["status"] in ("Disabled", "Archived"):
            live = self.rng.choice(["Launched", "In Progress"]) if kind == "gates" else "Enabled"
            before = {"status": live, "isEnabled": True}
        history: list[_Obj] = []
        for k in range(1, count):
            snap = {**obj, "version": k, **before}
            snap["lastModifiedTime"] = created + (modified - created) * (k - 1) // max(1, count - 1)
            if isinstance(rules, list):
                # Rules were added over time: version k lacks the last (count - k) rules.
                snap["rules"] = rules[: max(0, len(rules) - (count - k))]
            if k == 1:
                snap["lastModifierID"] = obj.get("creatorID")
                snap["lastModifierName"] = obj.get("creatorName")
                snap["lastModifierEmail"] = obj.get("creatorEmail")
            history.append(snap)
        history.append(obj)
        return list(_json_copy(history))

    def creator_of(self, obj: _Obj) -> _Person:
        return {
            "id": obj.get("creatorID") or "console_api",
            "name": obj.get("creatorName"),
            "email": obj.get("creatorEmail"),
        }

    def history_events(self, kind: str, obj: _Obj) -> None:
        count = int(obj["version"])
        created, modified = int(obj["createdTime"]), int(obj["lastModifiedTime"])
        action, change_log = {
            "gates": ("config_conditions_update", "Updated Rules"),
            "dynamic_configs": ("config_conditions_update", "Updated Rules"),
            "segments": (
                ("ID_list_update", "Updated ID List")
                if obj.get("type") == "id_list"
                else ("config_conditions_update", "Updated Rules")
            ),
            "experiments": ("experiment_edit", "Edited Experiment"),
            "layers": ("layer_parameters_edit", "Edited Parameters"),
            "holdouts": ("holdout_update", "Updated Holdout"),
        }[kind]
        for k in range(2, count + 1):
            ts = created + (modified - created) * (k - 1) // max(1, count - 1)
            person = None if k == count else self.creator_of(obj)
            self.event(ts, action, change_log, obj, person)
        status = obj.get("status")
        if kind == "gates" and status == "Archived":
            self.event(int(obj["lastModifiedTime"]), "config_state_toggle", "Archived Gate", obj)
        elif kind == "experiments" and status in ("active", "decision_made", "abandoned"):
            self.event(int(obj["startTime"]), "experiment_start", "Started Experiment", obj)
            if status == "decision_made":
                self.event(
                    int(obj["decisionTime"]), "experiment_decision_make", "Made Decision", obj
                )
            elif status == "abandoned":
                self.event(int(obj["endTime"]), "experiment_abandon", "Abandoned Experiment", obj)
