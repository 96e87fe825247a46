"""The policy of the example mapping plugin, in plain Python (no WIT types),
the same as the Rust example's `src/policy.rs`:

- every active user gets the role ``learner`` (reason ``active``);
- a member of a group whose display name is in ``manager_groups`` (any
  case) gets the role ``manager`` (reason ``group:<display name>``);
- the enterprise ``department``, looked up in ``departments`` (any case),
  gives that department's teams and learning paths (reason
  ``department:<name as in the settings>``);
- the office, the ``locality`` of the user's ``work`` address (else of its
  first address), looked up in ``offices`` (any case), gives the team
  ``Office <city>`` (reason ``office:<city>``) and the learning path of the
  office's region from ``region_paths`` (reason ``region:<region>``). An
  office missing from the table is refused with ``unknown-office`` when
  ``strict_offices`` is true, and gives nothing otherwise. A user with no
  locality gets no office grants.

Settings that are not valid JSON, or do not have this shape, are refused
with ``bad-settings``. ``{}`` makes every active user a learner.
"""

import json
from dataclasses import dataclass
from typing import List, Optional

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LEARNER_ROLE = "learner"
MANAGER_ROLE = "manager"
MAX_TEXT = 200  # the host's limit on a grant's name and reason, in characters

# Kinds, as the WIT `grant-kind` cases.
ROLE, TEAM, LEARNING_PATH = "role", "team", "learning-path"

SHAPE = (
    'expected {"departments": {"<department>": {"teams": [...], "learning_paths": [...]}}, '
    '"offices": {"<city>": "<region>"}, "region_paths": {"<region>": "<learning path>"}, '
    '"manager_groups": [...], "strict_offices": true|false}, every key optional'
)


@dataclass
class Assignment:
    kind: str  # ROLE, TEAM or LEARNING_PATH
    name: str
    reason: str


class Refusal(Exception):
    """Why a user is not mapped (the WIT `mapping-error`)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass
class GroupInput:
    id: str
    display_name: Optional[str]


@dataclass
class UserInput:
    id: str
    user_name: str
    active: bool
    groups: List[GroupInput]
    scim_json: str  # the SCIM User resource as JSON text


@dataclass
class Department:
    teams: List[str]
    learning_paths: List[str]


@dataclass
class Settings:
    departments: dict  # department -> Department
    offices: dict  # city -> region
    region_paths: dict  # region -> learning path
    manager_groups: List[str]
    strict_offices: bool


def _bad(message: str) -> Refusal:
    return Refusal("bad-settings", message)


def _invalid(detail: str) -> Refusal:
    return _bad(f"the plugin settings are not valid: {detail}; {SHAPE}")


def _object(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise _invalid(f"{where} must be an object")
    return value


def _strings(value, where: str) -> List[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _invalid(f"{where} must be a list of strings")
    return value


def _string(value, where: str) -> str:
    if not isinstance(value, str):
        raise _invalid(f"{where} must be a string")
    return value


def _only(obj: dict, known: set, where: str) -> None:
    for key in obj:
        if key not in known:
            raise _invalid(f"unknown field {key!r} in {where}, expected one of {sorted(known)}")


# Control characters (the Unicode category Cc, as Rust's char::is_control) to
# spaces. str.translate runs in C: a loop over characters in Python costs
# about ten times the fuel.
_CONTROLS = {c: " " for c in [*range(0x20), *range(0x7F, 0xA0)]}


def _name(what: str, value: str) -> None:
    if not value.strip() or len(value) > MAX_TEXT or value.translate(_CONTROLS) != value:
        raise _bad(f"{what} {value!r} must be 1 to {MAX_TEXT} printable characters")


def _fold(s: str) -> str:
    return s.strip().lower()


def _same(a: str, b: str) -> bool:
    return _fold(a) == _fold(b)


def parse_settings(text: str) -> Settings:
    """Parses and checks the settings document."""
    try:
        doc = json.loads(text)
    except (ValueError, TypeError) as e:
        raise _invalid(str(e)) from None
    _object(doc, "the settings")
    _only(doc, {"departments", "offices", "region_paths", "manager_groups", "strict_offices"}, "the settings")

    departments = {}
    for dept, d in _object(doc.get("departments", {}), '"departments"').items():
        _object(d, f"department {dept!r}")
        _only(d, {"teams", "learning_paths"}, f"department {dept!r}")
        departments[dept] = Department(
            _strings(d.get("teams", []), f"the teams of department {dept!r}"),
            _strings(d.get("learning_paths", []), f"the learning paths of department {dept!r}"),
        )
    offices = {
        city: _string(region, f"the region of office {city!r}")
        for city, region in _object(doc.get("offices", {}), '"offices"').items()
    }
    region_paths = {
        region: _string(path, f"the learning path of region {region!r}")
        for region, path in _object(doc.get("region_paths", {}), '"region_paths"').items()
    }
    manager_groups = _strings(doc.get("manager_groups", []), '"manager_groups"')
    strict = doc.get("strict_offices", False)
    if not isinstance(strict, bool):
        raise _invalid('"strict_offices" must be true or false')

    # The checks of the Rust example, in the same order (keys sorted, as its BTreeMap).
    for dept in sorted(departments):
        _name("department", f"department:{dept}")
        for item in departments[dept].teams + departments[dept].learning_paths:
            _name(f"a grant of department {dept!r}:", item)
    for city in sorted(offices):
        _name("office", f"Office {city}")
        if offices[city] not in region_paths:
            raise _bad(
                f'office {city!r} is in region {offices[city]!r}, which "region_paths" does not list '
                f"(it lists {sorted(region_paths)})"
            )
    for region in sorted(region_paths):
        _name("region", f"region:{region}")
        _name(f"the learning path of region {region!r}:", region_paths[region])
    for what, keys in (("departments", departments), ("offices", offices)):
        seen = {}
        for k in sorted(keys):
            if _fold(k) in seen:
                raise _bad(f'"{what}" has {seen[_fold(k)]!r} and {k!r}, which differ only in case')
            seen[_fold(k)] = k
    return Settings(departments, offices, region_paths, manager_groups, strict)


def assign(user: UserInput, settings: str) -> List[Assignment]:
    """The grants `user` should hold under `settings` (the settings JSON text).
    Raises Refusal."""
    return assign_with(user, parse_settings(settings))


def assign_with(user: UserInput, parsed: Settings) -> List[Assignment]:
    """`assign` with the settings already parsed (the component keeps them
    between the calls one instance serves)."""
    try:
        scim = json.loads(user.scim_json)
    except ValueError as e:
        raise Refusal("bad-user", f"the SCIM resource of user {user.user_name} is not JSON: {e}") from None
    return plan(user, scim, parsed)


def plan(user: UserInput, scim, settings: Settings) -> List[Assignment]:
    """`assign` with the settings and the SCIM resource already parsed."""
    out: List[Assignment] = []

    def add(kind: str, name: str, reason: str) -> None:
        # An item granted for two reasons is returned twice, so the LMS
        # records both as its sources; exact repeats are dropped. The host
        # refuses a whole output over one bad reason, so control characters
        # (possible in a group's display name) become spaces, and the reason
        # is trimmed and clipped to MAX_TEXT characters.
        reason = reason.strip().translate(_CONTROLS)[:MAX_TEXT].rstrip()
        if any(g.kind == kind and g.name == name and g.reason == reason for g in out):
            return
        out.append(Assignment(kind, name, reason))

    if not user.active:
        return out  # the host suspends inactive users whatever a plugin says
    add(ROLE, LEARNER_ROLE, "active")

    # Groups come ordered by id, so the reason is stable.
    for g in user.groups:
        if g.display_name is not None and any(_same(m, g.display_name) for m in settings.manager_groups):
            add(ROLE, MANAGER_ROLE, f"group:{g.display_name}")
            break

    dept = department(scim)
    if dept is not None:
        for key in sorted(settings.departments):
            if _same(key, dept):
                d = settings.departments[key]
                for team in d.teams:
                    add(TEAM, team, f"department:{key}")
                for path in d.learning_paths:
                    add(LEARNING_PATH, path, f"department:{key}")
                break

    city = office(scim)
    if city is not None:
        key = next((k for k in sorted(settings.offices) if _same(k, city)), None)
        if key is not None:
            region = settings.offices[key]
            add(TEAM, f"Office {key}", f"office:{key}")
            if region in settings.region_paths:
                add(LEARNING_PATH, settings.region_paths[region], f"region:{region}")
        elif settings.strict_offices:
            raise Refusal(
                "unknown-office",
                f"user {user.user_name}: office {json.dumps(city.strip()[:100], ensure_ascii=False)} "
                "(the locality of the work address) is not in the plugin settings' \"offices\" "
                f"({', '.join(sorted(settings.offices))}); add it there, or correct the address "
                "in the identity provider",
            )
    return out


# The engine stores attribute names in the schema's spelling and extension
# attributes under their schema URN, so the names below are exact; values are
# as the identity provider sent them.


def _text(obj, name: str) -> Optional[str]:
    v = obj.get(name) if isinstance(obj, dict) else None
    return v if isinstance(v, str) and v.strip() else None


def department(scim) -> Optional[str]:
    """The enterprise extension's `department`, when it has a value."""
    return _text(scim.get(ENTERPRISE) if isinstance(scim, dict) else None, "department")


def office(scim) -> Optional[str]:
    """The office city: the `locality` of the `work` address (`type` in any
    case), else of the first address."""
    addresses = scim.get("addresses") if isinstance(scim, dict) else None
    if not isinstance(addresses, list) or not addresses:
        return None
    for a in addresses:
        if (_text(a, "type") or "").strip().lower() == "work" and _text(a, "locality"):
            return _text(a, "locality")
    return _text(addresses[0], "locality")
