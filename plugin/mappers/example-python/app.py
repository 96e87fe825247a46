"""The example mapping plugin as a component of the world
`lms:mapping/mapper@0.1.0`, built with componentize-py (see build.sh).

Only the glue is here: WIT `user` in, WIT `grant`s out, or `Err` raised with
a `mapping-error`. The policy is in policy.py, tested without the component
(`python3 -m unittest`).
"""

from typing import List

import wit_world
from componentize_py_types import Err
from wit_world.imports import types

import policy

KINDS = {
    policy.ROLE: types.GrantKind.ROLE,
    policy.TEAM: types.GrantKind.TEAM,
    policy.LEARNING_PATH: types.GrantKind.LEARNING_PATH,
}


# The settings parsed last, with their text. The host may let one instance
# serve several users of a tenant in a row, and parsing the settings is a
# large part of a call; a new text is parsed again.
_parsed = ("", None)


def _settings(text: str) -> policy.Settings:
    global _parsed
    if _parsed[1] is None or _parsed[0] != text:
        _parsed = (text, policy.parse_settings(text))
    return _parsed[1]


class WitWorld(wit_world.WitWorld):
    def assign(self, user: types.User, settings: str) -> List[types.Grant]:
        facts = policy.UserInput(
            id=user.id,
            user_name=user.user_name,
            active=user.active,
            groups=[policy.GroupInput(g.id, g.display_name) for g in user.groups],
            scim_json=user.scim_json,
        )
        try:
            grants = policy.assign_with(facts, _settings(settings))
        except policy.Refusal as e:
            raise Err(types.MappingError(code=e.code, message=e.message))
        return [types.Grant(kind=KINDS[g.kind], name=g.name, reason=g.reason) for g in grants]
