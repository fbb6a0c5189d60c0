//! Live reload of the mappings directory: a change is picked up and served, cards rendered by the
//! old mappings are not served again, a request keeps the set it started with, and a set that
//! does not compile is refused while the last good one keeps serving.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use sitoo_voyado_proxy::config::MappingSource;
use sitoo_voyado_proxy::reload;

/// A copy of the repository's `mappings/` in a directory of its own.
fn mappings_copy(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("svp-reload-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["default.toml", "errors.toml", "routes.toml"] {
        std::fs::copy(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("mappings")
                .join(file),
            dir.join(file),
        )
        .unwrap();
    }
    dir
}

/// Rewrites `default.toml` the way an editor saves: a new file renamed over the old one.
fn edit_default(dir: &std::path::Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(dir.join("default.toml")).unwrap();
    assert!(text.contains(from), "{from}");
    let saved = dir.join(".default.toml.tmp");
    std::fs::write(&saved, text.replacen(from, to, 1)).unwrap();
    std::fs::rename(&saved, dir.join("default.toml")).unwrap();
}

fn bonus_title(card: &serde_json::Value) -> String {
    card["sections"][0]["values"][0]["title"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn until<F: AsyncFn() -> bool>(what: &str, check: F) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what}: not within 5 s");
}

#[tokio::test]
async fn a_changed_mapping_is_served_without_a_restart_and_no_old_card_survives_it() {
    let dir = mappings_copy("applied");
    let h = Harness::with_mappings("", MappingSource::Dir(dir.clone())).await;
    let card = format!("/customers/{ANNA}");
    assert_eq!(bonus_title(&h.get(&card).await.body), "Bonus Points");
    // The card is now kept in memory; the reload must not let it be served again.
    assert_eq!(bonus_title(&h.get(&card).await.body), "Bonus Points");
    tokio::spawn(reload::watch(h.app.clone(), Duration::from_millis(20)));

    edit_default(&dir, "value = \"Bonus Points\"", "value = \"Poäng\"");
    until("the new title on the card", async || {
        bonus_title(&h.get(&card).await.body) == "Poäng"
    })
    .await;
    assert_eq!(h.app.served().generation, 1);
    assert_eq!(metric(&h, "svp_mappings_generation", &[]).await, Some(1.0));
    assert_eq!(
        metric(&h, "svp_mappings_reloads_total", &[("result", "applied")]).await,
        Some(1.0)
    );
    let digest = h.app.served().digest.clone();
    assert_eq!(
        metric(&h, "svp_mappings_in_service", &[("digest", &digest)]).await,
        Some(1.0)
    );
}

#[tokio::test]
async fn a_mapping_that_does_not_compile_is_refused_and_the_last_good_one_serves() {
    let dir = mappings_copy("refused");
    let h = Harness::with_mappings("", MappingSource::Dir(dir.clone())).await;
    let logs = Captured::default();
    let _logging = logs.install();
    let before = h.app.served().digest.clone();
    edit_default(
        &dir,
        "codec = \"table:gender\"",
        "codec = \"table:genders\"",
    );
    let refused = h.app.reload().await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(h.app.served().digest, before, "the set in service stays");
    assert_eq!(h.app.served().generation, 0);
    let card = h.get(&format!("/customers/{ANNA}")).await;
    assert_eq!(card.status, 200, "{}", card.body);
    assert_eq!(card.body["gender"], "female");
    assert_eq!(
        metric(&h, "svp_mappings_reloads_total", &[("result", "refused")]).await,
        Some(1.0)
    );
    let text = logs.text();
    assert!(text.contains("mapping reload refused"), "{text}");
    assert!(
        text.contains("genders"),
        "the problem is in the log: {text}"
    );
}

/// A request that began before a reload finishes with the mappings it began with — every field
/// of its card from one set — and the next request gets the new set.
#[tokio::test]
async fn a_request_keeps_the_mappings_it_started_with() {
    let dir = mappings_copy("in-flight");
    let h = Arc::new(Harness::with_mappings("", MappingSource::Dir(dir.clone())).await);
    h.sim
        .set_latency("/memberstatus", Duration::from_millis(300));
    let card = format!("/customers/{ANNA}");
    let slow = {
        let h = h.clone();
        let card = card.clone();
        tokio::spawn(async move { h.get(&card).await })
    };
    until("the card's first round at Voyado", async || {
        !h.seen("GET", "/point-accounts").is_empty()
    })
    .await;
    edit_default(&dir, "value = \"Bonus Points\"", "value = \"Poäng\"");
    assert!(h.app.reload().await.unwrap().is_some());
    let old = slow.await.unwrap();
    assert_eq!(old.status, 200, "{}", old.body);
    assert_eq!(bonus_title(&old.body), "Bonus Points");
    assert_eq!(bonus_title(&h.get(&card).await.body), "Poäng");
}

/// The watcher: a broken save is refused once (not retried every tick) while the last good set
/// serves, and the fix is picked up.
#[tokio::test]
async fn a_broken_edit_is_refused_and_its_fix_is_picked_up() {
    let dir = mappings_copy("fixed");
    let h = Harness::with_mappings("", MappingSource::Dir(dir.clone())).await;
    tokio::spawn(reload::watch(h.app.clone(), Duration::from_millis(20)));
    let card = format!("/customers/{ANNA}");
    edit_default(
        &dir,
        "codec = \"table:gender\"",
        "codec = \"table:genders\"",
    );
    until("the broken set refused", async || {
        metric(&h, "svp_mappings_reloads_total", &[("result", "refused")]).await == Some(1.0)
    })
    .await;
    assert_eq!(
        h.get(&card).await.body["gender"],
        "female",
        "the last good set serves"
    );
    // Several more ticks: the same broken files are not tried again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        metric(&h, "svp_mappings_reloads_total", &[("result", "refused")]).await,
        Some(1.0)
    );
    edit_default(
        &dir,
        "codec = \"table:genders\"",
        "codec = \"table:gender\"",
    );
    edit_default(&dir, "value = \"Bonus Points\"", "value = \"Poäng\"");
    until("the fixed set served", async || {
        bonus_title(&h.get(&card).await.body) == "Poäng"
    })
    .await;
    assert_eq!(h.app.served().generation, 1);
}
