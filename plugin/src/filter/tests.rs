//! Table-driven filter tests: every production of the grammar, precedence,
//! type rules and the error cases.

use serde_json::{Value, json};

use super::*;
use crate::schema::{GROUP_TYPE, USER_TYPE};

fn users() -> Vec<Value> {
    vec![
        json!({
            "id": "1", "userName": "bjensen", "externalId": "Ext-1",
            "name": {"familyName": "Jensen", "givenName": "Barbara"},
            "title": "Tour Guide", "userType": "Employee", "active": true,
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "meta": {"created": "2010-01-23T04:56:22Z", "lastModified": "2011-05-13T04:42:34Z"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "employeeNumber": "701984", "department": "Tour Operations",
                "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}
            }
        }),
        json!({
            "id": "2", "userName": "jsmith", "active": false,
            "name": {"familyName": "Smith"},
            "title": "100% _real_ \"quoted\" \\ back",
            "emails": [{"value": "john@example.org", "type": "home"}],
            "meta": {"created": "2012-01-01T00:00:00Z", "lastModified": "2010-01-01T00:00:00+02:00"}
        }),
        json!({
            "id": "3", "userName": "nobody", "title": "",
            "emails": [],
            "meta": {"created": "2013-01-01T00:00:00Z", "lastModified": "2013-01-01T00:00:00Z"}
        }),
    ]
}

/// The ids of the users matching a filter.
fn select(filter: &str) -> Vec<&'static str> {
    let f = parse(&USER_TYPE, filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
    let ids = ["1", "2", "3"];
    users()
        .iter()
        .zip(ids)
        .filter(|(u, _)| f.matches(u))
        .map(|(_, id)| id)
        .collect()
}

#[test]
fn matches_table() {
    let cases: &[(&str, &[&str])] = &[
        // Attribute operators and case rules.
        (r#"userName eq "bjensen""#, &["1"]),
        (r#"userName eq "BJENSEN""#, &["1"]),
        (r#"USERNAME EQ "bjensen""#, &["1"]),
        (r#"externalId eq "ext-1""#, &[]),
        (r#"externalId eq "Ext-1""#, &["1"]),
        (r#"userName ne "bjensen""#, &["2", "3"]),
        (r#"name.familyName co "ens""#, &["1"]),
        (r#"userName sw "J""#, &["2"]),
        (r#"userName ew "SEN""#, &["1"]),
        (r#"userName gt "c""#, &["2", "3"]),
        (r#"userName ge "jsmith""#, &["2", "3"]),
        (r#"userName lt "jsmith""#, &["1"]),
        (r#"userName le "jsmith""#, &["1", "2"]),
        (r#"title pr"#, &["1", "2"]),
        (r#"emails pr"#, &["1", "2"]),
        (r#"nickName pr"#, &[]),
        (r#"active eq true"#, &["1"]),
        (r#"active eq false"#, &["2"]),
        (r#"active ne true"#, &["2"]),
        (r#"active eq "True""#, &["1"]),
        // Multi-valued: any value matches; complex compares by `value`.
        (r#"emails.value co "example""#, &["1", "2"]),
        (r#"emails co "jensen.org""#, &["1"]),
        (r#"emails.type eq "work""#, &["1"]),
        (
            r#"emails[type eq "work" and value co "@example.com"]"#,
            &["1"],
        ),
        (r#"emails[type eq "home" and value co "@example.com"]"#, &[]),
        (
            r#"emails[type eq "work"].value eq "bjensen@example.com""#,
            &["1"],
        ),
        (
            r#"emails[type eq "home"].value eq "bjensen@example.com""#,
            &[],
        ),
        (r#"emails[not (type eq "work")]"#, &["1", "2"]),
        // Logic and precedence: not > and > or.
        (
            r#"userName eq "bjensen" or userName eq "jsmith" and active eq true"#,
            &["1"],
        ),
        (
            r#"(userName eq "bjensen" or userName eq "jsmith") and active eq false"#,
            &["2"],
        ),
        (
            r#"not (userName eq "bjensen" or userName eq "jsmith")"#,
            &["3"],
        ),
        (
            r#"userType eq "Employee" and (emails co "example.com" or emails co "example.org")"#,
            &["1"],
        ),
        (
            r#"userType eq "Employee" and (emails.type eq "work")"#,
            &["1"],
        ),
        (
            r#"title pr and (userName eq "jsmith" and not (nickName pr))"#,
            &["2"],
        ),
        (r#"((((userName eq "bjensen"))))"#, &["1"]),
        (r#"userName eq "x" OR userName eq "nobody""#, &["3"]),
        // Dates compare as instants, not text.
        (r#"meta.lastModified gt "2011-05-13T04:42:34Z""#, &["3"]),
        (
            r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
            &["1", "3"],
        ),
        (r#"meta.lastModified lt "2010-01-01T00:00:00Z""#, &["2"]),
        (
            r#"meta.lastModified eq "2011-05-13T06:42:34+02:00""#,
            &["1"],
        ),
        (
            r#"meta.created gt "2015-10-10T14:38:21.8617979-07:00""#,
            &[],
        ),
        // Escapes and wildcard characters are literal.
        (r#"title co "100%""#, &["2"]),
        (r#"title co "_real_""#, &["2"]),
        (r#"title co "\"quoted\"""#, &["2"]),
        (r#"title co "\\ back""#, &["2"]),
        (r#"title co "%""#, &["2"]),
        // URN-qualified and extension paths.
        (
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "bjensen""#,
            &["1"],
        ),
        (
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#,
            &["1"],
        ),
        (
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#,
            &["1"],
        ),
        (
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department pr"#,
            &["1"],
        ),
        // Unquoted values (Entra ID, Microsoft's reference checks): a bare
        // token is a string; a bare number compares as its text with a
        // string attribute; dateTimes parse as instants.
        (r#"userName eq bjensen"#, &["1"]),
        (r#"userName eq BJensen and active eq true"#, &["1"]),
        (r#"externalId eq Ext-1"#, &["1"]),
        (r#"userName sw J"#, &["2"]),
        (
            r#"userType eq Employee and (emails.Value co example.com or emails.Value co example.org)"#,
            &["1"],
        ),
        (
            r#"emails[type eq work].value eq bjensen@example.com"#,
            &["1"],
        ),
        (r#"employeeNumber eq 701984"#, &["1"]),
        (r#"meta.created gt 2011-01-01T00:00:00Z"#, &["2", "3"]),
        (r#"meta.Created gt 2015-10-10T14:38:21.8617979-07:00"#, &[]),
        // A complex attribute compared as if it were its value, and
        // extension attributes named without their URN.
        (
            r#"manager eq "26118915-6090-4610-87e4-49d8ca9f808d""#,
            &["1"],
        ),
        (r#"manager eq 26118915-6090-4610-87e4-49d8ca9f808d"#, &["1"]),
        // As everywhere, an unassigned attribute matches no comparison.
        (r#"manager ne "26118915-6090-4610-87e4-49d8ca9f808d""#, &[]),
        (r#"manager ne "someone-else""#, &["1"]),
        (r#"manager pr"#, &["1"]),
        (r#"department eq "tour operations""#, &["1"]),
        (r#"Department co Tour and employeeNumber pr"#, &["1"]),
        // null literal.
        (r#"nickName eq null"#, &["1", "2", "3"]),
        (r#"title ne null"#, &["1", "2"]),
    ];
    for (filter, want) in cases {
        assert_eq!(&select(filter), want, "filter: {filter}");
    }
}

#[test]
fn rejects_table() {
    let cases: &[(&str, &str)] = &[
        ("", "empty"),
        ("userName", "expected an operator"),
        (r#"userName eq"#, "expected a value"),
        (r#"userName xx "a""#, "unknown operator 'xx'"),
        (r#"userName eq )"#, "expected a value after 'eq', found ')'"),
        (r#"userName eq true"#, "compare it with a quoted string"),
        (r#"active eq yes"#, "compare it with true or false"),
        (r#"meta.created gt yesterday"#, "not a valid dateTime"),
        (r#"userName eq bjensen extra"#, "expected 'and', 'or'"),
        (r#"departmnet eq Sales"#, "unknown attribute 'departmnet'"),
        (r#"nope eq "a""#, "unknown attribute 'nope'"),
        (r#"name.nope eq "a""#, "no sub-attribute 'nope'"),
        (r#"urn:example:unknown:attr eq "a""#, "unknown schema"),
        (r#"active gt true"#, "not defined for boolean"),
        (r#"active co "t""#, "not defined for boolean"),
        (r#"meta.created gt "yesterday""#, "not a valid dateTime"),
        (r#"meta.created co "2010""#, "not defined for dateTime"),
        (r#"name eq "x""#, "is complex"),
        (r#"userName eq "a" and"#, "expected an expression"),
        (r#"(userName eq "a""#, "expected ')'"),
        (r#"userName eq "a")"#, "unexpected ')'"),
        (r#"userName eq "unterminated"#, "unterminated"),
        (r#"emails[type eq "work""#, "expected ']'"),
        (r#"userName[value eq "x"]"#, "not a complex attribute"),
        (r#"emails[value[type eq "x"]]"#, "cannot be nested"),
        (r#"userName eq "a" userName eq "b""#, "expected 'and', 'or'"),
    ];
    for (filter, want) in cases {
        let err = parse(&USER_TYPE, filter).expect_err(filter);
        assert_eq!(err.status, 400, "{filter}");
        assert_eq!(
            err.scim_type,
            Some(crate::error::ScimType::InvalidFilter),
            "{filter}"
        );
        assert!(err.detail.contains(want), "{filter}: {}", err.detail);
    }
}

#[test]
fn deep_nesting_is_rejected_not_overflowed() {
    let deep = format!(
        "{}userName eq \"a\"{}",
        "(".repeat(20_000),
        ")".repeat(20_000)
    );
    let err = parse(&USER_TYPE, &deep).unwrap_err();
    assert!(err.detail.contains("nesting deeper"), "{}", err.detail);
    let nots = format!("{}userName pr", "not ".repeat(10_000));
    assert!(parse(&USER_TYPE, &nots).is_err());
    let ok = format!(
        "{}userName eq \"bjensen\"{}",
        "(".repeat(MAX_DEPTH),
        ")".repeat(MAX_DEPTH)
    );
    assert!(parse(&USER_TYPE, &ok).is_ok());
}

#[test]
fn long_flat_chains_are_fine() {
    let chain = vec![r#"userName eq "x""#; 2000].join(" or ");
    let f = parse(&USER_TYPE, &chain).unwrap();
    assert!(!f.matches(&users()[0]));
}

#[test]
fn group_filters_resolve_against_group_schema() {
    assert!(parse(&GROUP_TYPE, r#"displayName eq "Admins""#).is_ok());
    assert!(parse(&GROUP_TYPE, r#"members[value eq "1"]"#).is_ok());
    assert!(parse(&GROUP_TYPE, r#"userName eq "x""#).is_err());
}

#[test]
fn case_folding_is_unicode_aware() {
    let f = parse(&USER_TYPE, r#"nickName co "in k""#).unwrap();
    assert!(f.matches(&json!({"nickName": "Degrees in \u{212A}elvin"})));
}

#[test]
fn entra_reference_check_with_unquoted_ids() {
    let f = parse(
        &USER_TYPE,
        "id eq 2819c223-7f76-453a-919d-413861904646 and manager eq 902c246b-6245-4190-8e05-00816be7344a",
    )
    .unwrap();
    let user = |id: &str, manager: &str| {
        json!({"id": id, "userName": "u",
               "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": {"value": manager}}})
    };
    assert!(f.matches(&user(
        "2819c223-7f76-453a-919d-413861904646",
        "902c246b-6245-4190-8e05-00816be7344a"
    )));
    assert!(!f.matches(&user(
        "2819c223-7f76-453a-919d-413861904646",
        "someone-else"
    )));
    // The same filter quoted means the same.
    let quoted = parse(
        &USER_TYPE,
        r#"id eq "2819c223-7f76-453a-919d-413861904646" and manager eq "902c246b-6245-4190-8e05-00816be7344a""#,
    )
    .unwrap();
    assert_eq!(format!("{f:?}"), format!("{quoted:?}"));
}
