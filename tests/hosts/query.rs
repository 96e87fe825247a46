//! Filtering and paging of lists: `eq` ignoring case, `sw`, `and`/`or`,
//! `startIndex`/`count` with `totalResults`, and cursors.

use serde_json::{Value, json};

use crate::support::{ENTERPRISE, Host, USER_SCHEMA, encode, resources, str_of, unique};

/// Creates users `{prefix}.{suffix}` with these departments and `active`
/// flags, in order; their ids.
fn directory(h: &Host, prefix: &str, people: &[(&str, &str, bool)]) -> Vec<String> {
    people
        .iter()
        .map(|(suffix, dept, active)| {
            let r = h
                .post(
                    "/Users",
                    &json!({
                        "schemas": [USER_SCHEMA, ENTERPRISE],
                        "userName": format!("{prefix}.{suffix}"),
                        "active": active,
                        ENTERPRISE: {"department": dept},
                    }),
                )
                .expect(201);
            str_of(&r.json, "id")
        })
        .collect()
}

/// `userName eq` matches whatever the case (userName is caseExact false),
/// as Entra ID's and Okta's look-ups before a create rely on.
pub fn user_name_eq_ignores_case(h: &Host) {
    let prefix = unique("Case.Query");
    let name = format!("{prefix}.MixedCase@Example.com");
    let id = h.create_user(&name);
    for asked in [name.clone(), name.to_lowercase(), name.to_uppercase()] {
        let r = h
            .get(&format!(
                "/Users?filter={}",
                encode(&format!("userName eq \"{asked}\""))
            ))
            .expect(200);
        let found = resources(&r);
        assert_eq!(r.json["totalResults"], 1, "{asked}: {}", r.text);
        assert_eq!(found.len(), 1, "{asked}: {}", r.text);
        assert_eq!(found[0]["id"], id.as_str());
        // The stored value keeps its case.
        assert_eq!(found[0]["userName"], name.as_str());
    }
    let (names, total) = h.user_names(&format!("userName eq \"{prefix}.other\""));
    assert_eq!((names.len(), total), (0, 0));
}

/// `sw`, `and`, `or`, `not` and an extension attribute, each answering
/// exactly the users that match.
pub fn sw_and_or_filters(h: &Host) {
    let p = unique("filters");
    directory(
        h,
        &p,
        &[
            ("alice", "Tours", true),
            ("albert", "Sales", false),
            ("bob", "Tours", true),
            ("carol", "Sales", true),
        ],
    );
    let name = |s: &str| format!("{p}.{s}");
    let cases: Vec<(String, Vec<String>)> = vec![
        (
            format!("userName sw \"{p}.al\""),
            vec![name("alice"), name("albert")],
        ),
        (
            format!("userName sw \"{}\"", p.to_uppercase()),
            vec![name("alice"), name("albert"), name("bob"), name("carol")],
        ),
        (
            format!("userName sw \"{p}.al\" and active eq true"),
            vec![name("alice")],
        ),
        (
            format!("userName eq \"{p}.bob\" or userName eq \"{p}.carol\""),
            vec![name("bob"), name("carol")],
        ),
        (
            format!(
                "userName sw \"{p}.\" and ({ENTERPRISE}:department eq \"Sales\" or active eq false)"
            ),
            vec![name("albert"), name("carol")],
        ),
        (
            format!("userName sw \"{p}.\" and not (userName sw \"{p}.al\")"),
            vec![name("bob"), name("carol")],
        ),
        (format!("userName sw \"{p}.z\""), vec![]),
    ];
    for (filter, mut want) in cases {
        let (mut got, total) = h.user_names(&filter);
        got.sort();
        want.sort();
        assert_eq!(got, want, "{filter}");
        assert_eq!(total, want.len() as u64, "{filter}");
    }
}

/// `startIndex` and `count`: pages of a filtered list that together are
/// the list, `totalResults` the whole count, `itemsPerPage` the page's.
pub fn index_paging(h: &Host) {
    let p = unique("paging");
    let suffixes: Vec<String> = (0..7).map(|i| format!("u{i}")).collect();
    let people: Vec<(&str, &str, bool)> =
        suffixes.iter().map(|s| (s.as_str(), "D", true)).collect();
    let mut ids = directory(h, &p, &people);
    let filter = encode(&format!("userName sw \"{p}.\""));
    let mut seen: Vec<String> = Vec::new();
    for start in [1, 4, 7] {
        let r = h
            .get(&format!(
                "/Users?filter={filter}&startIndex={start}&count=3"
            ))
            .expect(200);
        assert_eq!(r.json["totalResults"], 7, "{}", r.text);
        assert_eq!(r.json["startIndex"], start, "{}", r.text);
        let page = resources(&r);
        let want = if start == 7 { 1 } else { 3 };
        assert_eq!(page.len(), want, "startIndex={start}: {}", r.text);
        assert_eq!(r.json["itemsPerPage"], want, "{}", r.text);
        seen.extend(page.iter().map(|u| str_of(u, "id")));
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 7, "pages overlap: {seen:?}");
    ids.sort();
    assert_eq!(sorted, ids);
    // count=0 answers the count only.
    let r = h
        .get(&format!("/Users?filter={filter}&count=0"))
        .expect(200);
    assert_eq!(r.json["totalResults"], 7, "{}", r.text);
    assert!(resources(&r).is_empty(), "{}", r.text);
    // Past the end: no resources, the same total.
    let r = h
        .get(&format!("/Users?filter={filter}&startIndex=50&count=3"))
        .expect(200);
    assert_eq!(r.json["totalResults"], 7, "{}", r.text);
    assert!(resources(&r).is_empty(), "{}", r.text);
}

/// Cursor paging (advertised in `/ServiceProviderConfig`): `nextCursor`
/// walks a filtered list to its end, each user once.
pub fn cursor_paging(h: &Host) {
    let spc = h.get("/ServiceProviderConfig").expect(200).json;
    assert_eq!(
        spc["pagination"]["cursor"], true,
        "the engine offers cursor paging: {spc}"
    );
    let p = unique("cursor");
    let suffixes: Vec<String> = (0..5).map(|i| format!("c{i}")).collect();
    let people: Vec<(&str, &str, bool)> =
        suffixes.iter().map(|s| (s.as_str(), "D", true)).collect();
    let mut ids = directory(h, &p, &people);
    let filter = encode(&format!("userName sw \"{p}.\""));
    let mut url = format!("/Users?filter={filter}&cursor&count=2");
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let r = h.get(&url).expect(200);
        pages += 1;
        assert!(pages <= 3, "more pages than users: {}", r.text);
        assert_eq!(r.json["totalResults"], 5, "{}", r.text);
        seen.extend(resources(&r).iter().map(|u| str_of(u, "id")));
        match &r.json["nextCursor"] {
            Value::String(c) => {
                url = format!("/Users?filter={filter}&cursor={}&count=2", encode(c))
            }
            Value::Null => break,
            other => panic!("nextCursor is {other}"),
        }
    }
    assert_eq!(pages, 3);
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids);
    h.get("/Users?cursor=not-a-cursor")
        .expect_error(400, Some("invalidCursor"));
}

/// Groups filter by `displayName` (ignoring case) and by member.
pub fn group_filters(h: &Host) {
    let member = h.create_user(&unique("gfilter.member"));
    let name = unique("Filter Group");
    let gid = h.create_group(&name, &[&member]);
    let other = h.create_group(&format!("{name} Other"), &[]);
    let list = |filter: &str| -> Vec<String> {
        let r = h
            .get(&format!(
                "/Groups?filter={}&excludedAttributes=members",
                encode(filter)
            ))
            .expect(200);
        let mut ids: Vec<String> = resources(&r).iter().map(|g| str_of(g, "id")).collect();
        assert_eq!(r.json["totalResults"], ids.len(), "{}", r.text);
        ids.sort();
        ids
    };
    assert_eq!(
        list(&format!("displayName eq \"{}\"", name.to_uppercase())),
        std::slice::from_ref(&gid)
    );
    let mut both = vec![gid.clone(), other.clone()];
    both.sort();
    assert_eq!(list(&format!("displayName sw \"{name}\"")), both);
    assert_eq!(list(&format!("members.value eq \"{member}\"")), [gid]);
}
