"""Unit tests of policy.py, without the component: `python3 -m unittest`.

The sample users and expectations are shared with the Rust example
(samples/ links to ../example-rust/samples), so both implementations must
agree on them.
"""

import json
import pathlib
import unittest

import policy

SAMPLES = pathlib.Path(__file__).resolve().parent / "samples"
SETTINGS = (SAMPLES / "settings.json").read_text()
USERS = ["bjensen.json", "mchen.json", "contractor.json", "rdiaz.json"]


def load(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text())


def run(sample: dict, settings: str):
    """Runs the policy on a sample (the WIT `user` as JSON, with `scim-json`
    as an object), the way app.py does."""
    user = policy.UserInput(
        id=sample["id"],
        user_name=sample["user-name"],
        active=sample["active"],
        groups=[policy.GroupInput(g["id"], g.get("display-name")) for g in sample["groups"]],
        scim_json=json.dumps(sample["scim-json"]),
    )
    return policy.assign(user, settings)


def triples(grants):
    return [[g.kind, g.name, g.reason] for g in grants]


def settings_with(**changes) -> str:
    s = json.loads(SETTINGS)
    s.update(changes)
    return json.dumps(s)


class PolicyTest(unittest.TestCase):
    def test_samples_give_the_expected_grants(self):
        expected = json.loads((SAMPLES / "expected.json").read_text())
        for name in USERS:
            with self.subTest(name):
                want = expected[name]
                if "error" in want:
                    with self.assertRaises(policy.Refusal) as cm:
                        run(load(name), SETTINGS)
                    self.assertEqual(cm.exception.code, want["error"])
                else:
                    self.assertEqual(triples(run(load(name), SETTINGS)), want["grants"])

    def test_unknown_office_is_refused_only_when_strict(self):
        with self.assertRaises(policy.Refusal) as cm:
            run(load("contractor.json"), SETTINGS)
        self.assertEqual(cm.exception.code, "unknown-office")
        self.assertIn('"Lisbon"', cm.exception.message)
        self.assertIn("Berlin, Boston, London, Toronto", cm.exception.message)
        grants = run(load("contractor.json"), settings_with(strict_offices=False))
        self.assertEqual(triples(grants), [["role", "learner", "active"]])

    def test_no_address_is_no_office_even_when_strict(self):
        grants = run(load("rdiaz.json"), SETTINGS)
        self.assertFalse([g for g in grants if g.name.startswith("Office ")])

    def test_the_work_address_wins_over_the_first(self):
        user = load("bjensen.json")
        self.assertIn(["team", "Office Berlin", "office:Berlin"], triples(run(user, SETTINGS)))
        del user["scim-json"]["addresses"][1:]  # only the home address, in Potsdam
        with self.assertRaises(policy.Refusal) as cm:
            run(user, SETTINGS)
        self.assertEqual(cm.exception.code, "unknown-office")

    def test_no_settings_makes_every_active_user_a_learner(self):
        for name in USERS:
            self.assertEqual(triples(run(load(name), "{}")), [["role", "learner", "active"]], name)

    def test_inactive_users_hold_nothing(self):
        user = load("bjensen.json")
        user["active"] = False
        self.assertEqual(run(user, SETTINGS), [])

    def test_bad_settings_are_refused(self):
        for bad in [
            "",
            "not json",
            "[]",
            '{"departments": []}',
            '{"manager_group": ["typo"]}',
            '{"offices": {"Berlin": "EMEA"}}',
            '{"offices": {"Berlin": "EMEA", "berlin": "EMEA"}, "region_paths": {"EMEA": "P"}}',
            '{"departments": {"Sales": {"teams": [""]}}}',
            '{"strict_offices": "yes"}',
        ]:
            with self.subTest(bad), self.assertRaises(policy.Refusal) as cm:
                run(load("mchen.json"), bad)
            self.assertEqual(cm.exception.code, "bad-settings")
        with self.assertRaises(policy.Refusal) as cm:
            run(load("mchen.json"), '{"offices": {"Paris": "Europe"}}')
        self.assertIn("'Europe'", cm.exception.message)

    def test_names_and_reasons_fit_the_limits(self):
        long = "M" * 500
        user = load("mchen.json")
        user["groups"][0]["display-name"] = long
        grants = run(user, settings_with(manager_groups=[long]))
        manager = next(g for g in grants if g.name == policy.MANAGER_ROLE)
        self.assertEqual(len(manager.reason), policy.MAX_TEXT)
        s = json.loads(SETTINGS)
        s["region_paths"]["EMEA"] = long
        with self.assertRaises(policy.Refusal) as cm:
            run(load("mchen.json"), json.dumps(s))
        self.assertEqual(cm.exception.code, "bad-settings")

    def test_values_match_in_any_case(self):
        # mchen's department is "sales" and office "boston " in the sample.
        user = load("bjensen.json")
        user["scim-json"][policy.ENTERPRISE]["department"] = " ENGINEERING"
        user["scim-json"]["addresses"][1].update(type="Work", locality="BERLIN")
        grants = triples(run(user, SETTINGS))
        self.assertIn(["team", "Engineering", "department:Engineering"], grants)
        self.assertIn(["team", "Office Berlin", "office:Berlin"], grants)

    def test_blank_values_count_as_missing(self):
        user = load("bjensen.json")
        user["scim-json"][policy.ENTERPRISE]["department"] = "  "
        user["scim-json"]["addresses"][1]["locality"] = ""
        # No department; the work address has no locality, so the first
        # address (Potsdam, unknown) counts.
        with self.assertRaises(policy.Refusal) as cm:
            run(user, SETTINGS)
        self.assertEqual(cm.exception.code, "unknown-office")

    def test_an_item_keeps_each_of_its_reasons_once(self):
        s = json.loads(SETTINGS)
        s["departments"]["Engineering"]["teams"] = ["Office Berlin", "Engineering", "Office Berlin"]
        grants = run(load("bjensen.json"), json.dumps(s))
        berlin = [g.reason for g in grants if g.name == "Office Berlin"]
        self.assertEqual(berlin, ["department:Engineering", "office:Berlin"])

    def test_control_characters_never_reach_a_reason(self):
        user = load("mchen.json")
        user["groups"][0]["display-name"] = "Leads\nEMEA"
        grants = run(user, settings_with(manager_groups=["Leads\nEMEA"]))
        self.assertIn(["role", "manager", "group:Leads EMEA"], triples(grants))
        s = json.loads(SETTINGS)
        s["departments"]["Sales"]["teams"] = ["a\tb"]
        with self.assertRaises(policy.Refusal) as cm:
            run(load("mchen.json"), json.dumps(s))
        self.assertEqual(cm.exception.code, "bad-settings")

    def test_bad_scim_json_is_refused(self):
        user = policy.UserInput("x", "x@example.com", True, [], "{")
        with self.assertRaises(policy.Refusal) as cm:
            policy.assign(user, "{}")
        self.assertEqual(cm.exception.code, "bad-user")


if __name__ == "__main__":
    unittest.main()
