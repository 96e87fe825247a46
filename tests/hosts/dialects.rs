//! PATCH as identity providers send it: Entra ID's capitalised ops, string
//! booleans and member value lists; Okta's path-less replace and member
//! removal by filter; path-less values keyed by attribute paths.

use serde_json::json;

use crate::support::{ENTERPRISE, Host, member_ids, unique};

/// Entra ID: `Replace`/`Add`/`Remove` capitalised, `"False"` as a string,
/// value paths into multi-valued attributes, extension attributes by URN,
/// members added and removed as value lists.
pub fn entra_id_patches(h: &Host) {
    let name = unique("entra.user");
    let id = h.create_user(&name);
    let boss = h.create_user(&unique("entra.boss"));
    let r = h
        .patch(
            &format!("/Users/{id}"),
            json!([
                {"op": "Replace", "path": "active", "value": "False"},
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": format!("new.{name}@example.com")},
                {"op": "Replace", "path": "name.givenName", "value": "Adele"},
                {"op": "Add", "path": "title", "value": "Engineer"},
                {"op": "Add", "path": format!("{ENTERPRISE}:department"), "value": "Sales"},
                {"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": boss},
            ]),
        )
        .expect(200);
    let u = h.get(&format!("/Users/{id}")).expect(200).json;
    assert_eq!(r.json["id"], id.as_str(), "{}", r.text);
    assert_eq!(u["active"], false, "the string \"False\" is false: {u}");
    assert_eq!(
        u["emails"][0]["value"],
        format!("new.{name}@example.com"),
        "{u}"
    );
    assert_eq!(u["emails"].as_array().map(Vec::len), Some(1), "{u}");
    assert_eq!(u["name"]["givenName"], "Adele", "{u}");
    assert_eq!(u["name"]["familyName"], "Family", "{u}");
    assert_eq!(u["title"], "Engineer", "{u}");
    assert_eq!(u[ENTERPRISE]["department"], "Sales", "{u}");
    assert_eq!(u[ENTERPRISE]["manager"]["value"], boss.as_str(), "{u}");
    h.patch(
        &format!("/Users/{id}"),
        json!([
            {"op": "Replace", "path": "active", "value": "True"},
            {"op": "Remove", "path": "title"},
        ]),
    )
    .expect(200);
    let u = h.get(&format!("/Users/{id}")).expect(200).json;
    assert_eq!(u["active"], true, "{u}");
    assert!(u.get("title").is_none(), "{u}");

    // Groups: created empty, members added and removed as value lists.
    let others: Vec<String> = (0..2)
        .map(|i| h.create_user(&unique(&format!("entra.member{i}"))))
        .collect();
    let gid = h.create_group(&unique("Entra Group"), &[]);
    h.patch(
        &format!("/Groups/{gid}"),
        json!([{"op": "Add", "path": "members", "value": [{"value": id}, {"value": others[0]}, {"value": others[1]}]}]),
    )
    .expect(204);
    let mut all = vec![id.clone(), others[0].clone(), others[1].clone()];
    all.sort();
    assert_eq!(
        member_ids(&h.get(&format!("/Groups/{gid}")).expect(200).json),
        all
    );
    // Adding a member twice changes nothing.
    h.patch(
        &format!("/Groups/{gid}"),
        json!([{"op": "Add", "path": "members", "value": [{"value": id}]}]),
    )
    .expect(204);
    h.patch(
        &format!("/Groups/{gid}"),
        json!([{"op": "Remove", "path": "members", "value": [{"value": others[0]}]}]),
    )
    .expect(204);
    let mut left = vec![id.clone(), others[1].clone()];
    left.sort();
    let g = h.get(&format!("/Groups/{gid}")).expect(200).json;
    assert_eq!(
        member_ids(&g),
        left,
        "Remove with a value list removes those only"
    );
    let renamed = unique("Entra Renamed");
    h.patch(
        &format!("/Groups/{gid}"),
        json!([{"op": "Replace", "path": "displayName", "value": renamed}]),
    )
    .expect(204);
    let g = h.get(&format!("/Groups/{gid}")).expect(200).json;
    assert_eq!(g["displayName"], renamed.as_str(), "{g}");
    assert_eq!(member_ids(&g), left, "a rename keeps the members");
}

/// Okta: `replace` without a path and an object value (`active`, a
/// group's `displayName` with its own `id`), members added by `add` and
/// removed by `members[value eq "…"]`.
pub fn okta_patches(h: &Host) {
    let id = h.create_user(&unique("okta.user"));
    h.patch(
        &format!("/Users/{id}"),
        json!([{"op": "replace", "value": {"active": false}}]),
    )
    .expect(200);
    assert_eq!(
        h.get(&format!("/Users/{id}")).expect(200).json["active"],
        false
    );
    h.patch(
        &format!("/Users/{id}"),
        json!([{"op": "replace", "value": {"active": true}}]),
    )
    .expect(200);
    assert_eq!(
        h.get(&format!("/Users/{id}")).expect(200).json["active"],
        true
    );

    let other = h.create_user(&unique("okta.other"));
    let gid = h.create_group(&unique("Okta Group"), &[]);
    h.patch(
        &format!("/Groups/{gid}"),
        json!([{"op": "add", "path": "members", "value": [{"value": id, "display": "Okta User"}, {"value": other}]}]),
    )
    .expect(204);
    h.patch(
        &format!("/Groups/{gid}"),
        json!([{"op": "remove", "path": format!("members[value eq \"{id}\"]")}]),
    )
    .expect(204);
    let g = h.get(&format!("/Groups/{gid}")).expect(200).json;
    assert_eq!(member_ids(&g), std::slice::from_ref(&other), "{g}");
    let renamed = unique("Okta Renamed");
    h.patch(
        &format!("/Groups/{gid}"),
        json!([{"op": "replace", "value": {"id": gid, "displayName": renamed}}]),
    )
    .expect(204);
    let g = h.get(&format!("/Groups/{gid}")).expect(200).json;
    assert_eq!(g["displayName"], renamed.as_str(), "{g}");
    assert_eq!(member_ids(&g), [other], "{g}");
}

/// Path-less `add` and `replace` whose value keys are attribute paths,
/// sub-attributes and URN-qualified extension attributes included.
pub fn path_less_patches(h: &Host) {
    let id = h.create_user(&unique("pathless.user"));
    h.patch(
        &format!("/Users/{id}"),
        json!([
            {"op": "add", "value": {
                "nickName": "Nick",
                "name.givenName": "Pat",
                format!("{ENTERPRISE}:department"): "Research",
            }},
            {"op": "replace", "value": {"displayName": "Pat Less", "name": {"familyName": "Less"}}},
        ]),
    )
    .expect(200);
    let u = h.get(&format!("/Users/{id}")).expect(200).json;
    assert_eq!(u["nickName"], "Nick", "{u}");
    assert_eq!(u["name"]["givenName"], "Pat", "{u}");
    assert_eq!(u["name"]["familyName"], "Less", "{u}");
    assert_eq!(u["displayName"], "Pat Less", "{u}");
    assert_eq!(u[ENTERPRISE]["department"], "Research", "{u}");
}
