//! Alert bodies. A delivery row stores the alert's JSON body; a Slack
//! webhook is sent [`slack`] of it, derived afresh at each attempt, so every
//! attempt of one event id sends the same bytes.

use serde_json::{Value, json};

use super::{Alert, Kind, SAMPLE};
use crate::event::Stamp;

/// A console page: absolute under the server's public origin when one is
/// configured (see `Settings::console_origin`), else a path.
fn console_link(origin: Option<&str>, page: &str) -> String {
    format!("{}/admin#/{page}", origin.unwrap_or(""))
}

/// [`console_link`] under this process's settings.
fn link(page: &str) -> String {
    console_link(super::settings().console_origin.as_deref(), page)
}

/// Where the console shows the events of a change.
fn events_link(change: &str) -> String {
    link(&format!("events?change={change}"))
}

/// One line for people, from the kind, the count and the first event.
pub fn summary(kind: Kind, count: u64, first: Option<&Value>) -> String {
    let what = |e: &Value| {
        let name = e["resourceName"]
            .as_str()
            .or_else(|| e["resourceId"].as_str())
            .filter(|s| !s.is_empty())
            .unwrap_or("-");
        format!("{} {}", e["resourceType"].as_str().unwrap_or("-"), name)
    };
    let reason = |e: &Value| {
        e["reason"]
            .as_str()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    };
    let more = |n: u64| {
        if n > 1 {
            format!(" and {} more", n - 1)
        } else {
            String::new()
        }
    };
    match (kind, first) {
        (Kind::ProvisioningFailed, Some(e)) => format!(
            "Provisioning failed: {} {}{}{}",
            e["action"].as_str().unwrap_or("request"),
            what(e),
            reason(e),
            more(count)
        ),
        (Kind::MappingFailed, Some(e)) => format!(
            "Mapping failed for {}{}{}; their LMS state was left as it was",
            what(e),
            reason(e),
            more(count)
        ),
        (Kind::RoleMismatch, _) => {
            format!("{count} learner role(s) held by hand differ from the mapped role")
        }
        (Kind::Drift, _) => {
            format!("{count} mapped grant(s) were found removed by hand in the LMS")
        }
        (Kind::PluginDisabled, _) => {
            "The mapping plugin was disabled after failing calls in a row; the tenant's rules apply"
                .into()
        }
        (kind, _) => format!("{count} {} event(s)", kind.as_str()),
    }
}

/// An alert's body, as queued for one webhook.
pub fn body(event_id: &str, tenant: &str, alert: &Alert, stamp: &Stamp) -> Value {
    json!({
        "id": event_id,
        "kind": alert.kind.as_str(),
        "tenant": tenant,
        "time": crate::db::now(),
        "summary": summary(alert.kind, alert.count, alert.sample.first()),
        "detail": alert.sample.first().and_then(|e| e["detail"].as_str()),
        "count": alert.count,
        "sample": alert.sample,
        "requestId": stamp.request_id,
        "changeId": stamp.change_id,
        "links": {"console": events_link(&stamp.change_id)},
    })
}

/// A queued body with more events of the same change and kind added
/// (another batch of one re-mapping): the count grows, the sample fills
/// up to [`super::SAMPLE`], the rest stays.
pub fn merge(mut body: Value, alert: &Alert) -> Value {
    let count = body["count"].as_u64().unwrap_or(0) + alert.count;
    body["count"] = json!(count);
    if let Some(sample) = body["sample"].as_array_mut() {
        let room = SAMPLE.saturating_sub(sample.len());
        sample.extend(alert.sample.iter().take(room).cloned());
    }
    body["summary"] = json!(summary(alert.kind, count, body["sample"].get(0)));
    body
}

/// The body of a backlog alert.
pub fn backlog(event_id: &str, tenant: &str, tasks: i64, age_secs: f64, minutes: i64) -> Value {
    let age_min = (age_secs / 60.0).floor() as i64;
    json!({
        "id": event_id,
        "kind": Kind::OutboxBacklog.as_str(),
        "tenant": tenant,
        "time": crate::db::now(),
        "summary": format!(
            "Background re-mapping is behind: the oldest of {tasks} waiting task(s) is {age_min} minute(s) old (threshold {minutes})"
        ),
        "detail": "`scim-host sync status` (or GET /admin/v1/sync) lists the tasks and their last errors",
        "count": tasks,
        "sample": [],
        "links": {"console": link("overview")},
    })
}

/// The body of a test alert.
pub fn test(event_id: &str, tenant: &str, hook: i64) -> Value {
    json!({
        "id": event_id,
        "kind": Kind::Test.as_str(),
        "tenant": tenant,
        "time": crate::db::now(),
        "summary": format!("A test alert for webhook {hook}: this webhook receives scim-host alerts"),
        "detail": null,
        "count": 1,
        "sample": [],
        "links": {"console": link("alerts")},
    })
}

/// What is sent to a webhook of `format` for the stored body.
pub fn render(format: &str, body: &str) -> String {
    if format != "slack" {
        return body.to_string();
    }
    match serde_json::from_str::<Value>(body) {
        Ok(v) => slack(&v).to_string(),
        Err(_) => json!({"text": body}).to_string(),
    }
}

/// A Slack-compatible message (incoming webhooks: `text` and Block Kit
/// `blocks`), its header naming the event id.
pub fn slack(body: &Value) -> Value {
    let s = |k: &str| body[k].as_str().unwrap_or_default().to_string();
    let text = format!("[{}] {}: {}", s("tenant"), s("kind"), s("summary"));
    let mut lines = vec![format!("*{}*", s("summary"))];
    if let Some(d) = body["detail"].as_str() {
        lines.push(d.to_string());
    }
    for e in body["sample"].as_array().into_iter().flatten().take(5) {
        lines.push(format!(
            "• {} {} {}{}",
            e["action"].as_str().unwrap_or(""),
            e["resourceType"].as_str().unwrap_or(""),
            e["resourceName"]
                .as_str()
                .or_else(|| e["resourceId"].as_str())
                .unwrap_or(""),
            e["reason"]
                .as_str()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ));
    }
    let mut header = format!("scim-host alert {}", s("id"));
    header.truncate(150);
    json!({
        "text": text,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": header}},
            {"type": "section", "text": {"type": "mrkdwn", "text": lines.join("\n")}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": format!(
                "tenant {} · {} · {} event(s) · {} · console {}",
                s("tenant"), s("kind"), body["count"], s("time"),
                body["links"]["console"].as_str().unwrap_or("")
            )}]},
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(kind: Kind, ids: std::ops::Range<u32>) -> Alert {
        Alert {
            kind,
            count: ids.len() as u64,
            sample: ids
                .take(SAMPLE)
                .map(|i| json!({"action": "mismatch", "resourceType": "Learner", "resourceId": format!("u{i}"), "resourceName": null, "reason": "manual-role-differs", "detail": "d"}))
                .collect(),
        }
    }

    #[test]
    fn a_merged_body_counts_everything_and_keeps_a_bounded_sample() {
        let stamp = Stamp {
            request_id: "r".into(),
            change_id: "c".into(),
            duration_us: 0,
        };
        let b = body("evt_1", "t", &alert(Kind::RoleMismatch, 0..4), &stamp);
        assert_eq!(b["links"]["console"], "/admin#/events?change=c");
        let b = merge(b, &alert(Kind::RoleMismatch, 4..500));
        assert_eq!(b["count"], 500);
        assert_eq!(b["sample"].as_array().unwrap().len(), SAMPLE);
        assert_eq!(b["sample"][4]["resourceId"], "u4");
        assert_eq!(b["id"], "evt_1");
        assert!(b["summary"].as_str().unwrap().starts_with("500 "), "{b}");
    }

    #[test]
    fn console_links_are_absolute_under_a_public_origin() {
        assert_eq!(
            console_link(Some("https://lms.example.com"), "events?change=c"),
            "https://lms.example.com/admin#/events?change=c"
        );
        assert_eq!(console_link(None, "overview"), "/admin#/overview");
        let origin = |url| {
            super::super::Settings::default()
                .with_public_url(Some(url))
                .console_origin
        };
        assert_eq!(
            origin("https://LMS.example.com:8443/scim/v2").as_deref(),
            Some("https://LMS.example.com:8443")
        );
        assert_eq!(
            origin("http://a.example/scim/v2?x").as_deref(),
            Some("http://a.example")
        );
        assert_eq!(origin("ftp://a.example/scim"), None);
        assert_eq!(origin("https://user@a.example/scim"), None);
        assert_eq!(origin("scim/v2"), None);
    }

    #[test]
    fn slack_bodies_carry_the_event_id_in_their_header_and_never_change() {
        let b = test("evt_9", "t", 3).to_string();
        let once = render("slack", &b);
        assert_eq!(once, render("slack", &b));
        let v: Value = serde_json::from_str(&once).unwrap();
        assert_eq!(v["blocks"][0]["text"]["text"], "scim-host alert evt_9");
        assert!(v["text"].as_str().unwrap().contains("test"));
        assert_eq!(render("json", &b), b);
    }
}
