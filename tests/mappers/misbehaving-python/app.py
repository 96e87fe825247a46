"""A test fixture: deliberately misbehaving mapping-plugin code.

Not an example (plugin/mappers/example-python is one). A component of the
world `lms:mapping/mapper@0.1.0` built with the real toolchain
(componentize-py, --stub-wasi) by build.sh, driven by the end-to-end tests
in tests/e2e/mapper_python.rs.

`assign` reads the settings {"mode": "<mode>"} and then:

| mode        | behaviour                                                  |
|-------------|------------------------------------------------------------|
| `ok`        | returns the team `Misbehaving`, reason `mode:ok` (control) |
| `raise`     | raises RuntimeError("deliberate exception for user <name>")|
| `print`     | print()s a line, then returns like `ok`                    |
| `sleep`     | time.sleep(30), then returns like `ok`                     |
| `loop`      | `while True: pass`                                         |
| `recursion` | recurses without end                                       |
| `memory`    | allocates 1 MiB blocks, keeping them, until that fails     |

Every mode that returns gives the team `Misbehaving` with the reason
`mode:<mode>`, so a test sees which mode's answer was applied. Unknown modes
and bad settings are refused with `bad-settings`. What each mode comes to in
the host (under --stub-wasi `print` and `sleep` trap too) is in
tests/e2e/mapper_python.rs.
"""

import json
import time
from typing import List

import wit_world
from componentize_py_types import Err
from wit_world.imports import types

TEAM = "Misbehaving"
SLEEP_SECONDS = 30


def _recurse(depth: int) -> int:
    return _recurse(depth + 1) + 1


def _refuse(message: str):
    raise Err(types.MappingError(code="bad-settings", message=message))


class WitWorld(wit_world.WitWorld):
    def assign(self, user: types.User, settings: str) -> List[types.Grant]:
        try:
            mode = json.loads(settings)["mode"]
        except (ValueError, KeyError, TypeError) as e:
            _refuse(f'expected {{"mode": "<mode>"}}: {e!r}')
        if mode == "ok":
            pass
        elif mode == "raise":
            raise RuntimeError(f"deliberate exception for user {user.user_name}")
        elif mode == "print":
            print(f"mapping user {user.user_name}")
        elif mode == "sleep":
            time.sleep(SLEEP_SECONDS)
        elif mode == "loop":
            while True:
                pass
        elif mode == "recursion":
            _recurse(0)
        elif mode == "memory":
            kept = []
            while True:
                kept.append(bytearray(1 << 20))
        else:
            _refuse(f"unknown mode {mode!r}")
        return [types.Grant(kind=types.GrantKind.TEAM, name=TEAM, reason=f"mode:{mode}")]
