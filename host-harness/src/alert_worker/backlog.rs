//! The outbox-backlog alert: each watching webhook's threshold against its
//! tenant's oldest outbox task, checked by the delivery worker.

use std::collections::HashSet;
use std::sync::Arc;

use super::write;
use crate::alerts::{Kind, hooks, payload, queue};
use crate::app::App;

/// Webhooks whose backlog alert is out and whose tenant's backlog has not
/// yet come back under their threshold: one alert per episode.
#[derive(Debug, Default)]
pub struct Episodes(HashSet<i64>);

/// Compares each watching webhook's threshold with its tenant's oldest
/// outbox task and queues an alert when a backlog starts.
///
/// The episode is remembered in `episodes` while the backlog lasts, and the
/// alert's event id names the oldest task, so neither a later check nor a
/// restart (nor another replica) alerts the same backlog twice.
pub async fn check(app: &Arc<App>, episodes: &mut Episodes) -> Result<(), String> {
    let pool = app.pool.clone();
    let watchers = tokio::task::spawn_blocking(move || {
        let conn = pool.get().map_err(|e| e.to_string())?;
        let watchers = hooks::backlog_watchers(&conn).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for (hook, tenant, name, minutes) in watchers {
            let oldest = crate::outbox::oldest(&conn, tenant).map_err(|e| e.to_string())?;
            out.push((hook, tenant, name, minutes, oldest));
        }
        Ok::<_, String>(out)
    })
    .await
    .map_err(|e| e.to_string())??;
    let Episodes(open) = episodes;
    open.retain(|hook| watchers.iter().any(|w| w.0 == *hook));
    for (hook, tenant, name, minutes, oldest) in watchers {
        let over = oldest.filter(|o| o.age_secs >= (minutes * 60) as f64);
        let Some(o) = over else {
            open.remove(&hook);
            continue;
        };
        if open.contains(&hook) {
            continue;
        }
        let event_id = format!("evt_backlog_{tenant}_{}", o.id);
        let body = payload::backlog(&event_id, &name, o.tasks, o.age_secs, minutes);
        let queued = write(app, move |c| {
            queue::insert(c, tenant, hook, Kind::OutboxBacklog, &body)
        })
        .await?;
        if queued {
            tracing::warn!(tenant = %name, hook, age_secs = o.age_secs, "outbox backlog alert queued");
        }
        open.insert(hook);
    }
    Ok(())
}
