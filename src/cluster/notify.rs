//! Fresh cards everywhere (contract §6.2, §6.7): a write tells the other replicas what it
//! changed before it answers the till, and each drops the answers and cards it holds about it.
//!
//! Redis pub/sub on one channel, `{prefix}writes`: a message is JSON, the publishing handle's
//! name and the list of changes. Pub/sub delivers to whoever is subscribed at that moment and
//! keeps nothing, so a replica whose subscription drops may miss messages: its subscriber says
//! so (`Notice::Gap`) once it is subscribed again, and until then the caches' own TTLs bound
//! how stale it can be. A handle skips its own messages (the write already dropped its own
//! entries); applying one twice would only cost a reload.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{Background, CONNECT_TIMEOUT, Cluster, Down};

/// The subscriber's first retry when subscribing fails while Redis looks up, doubled up to
/// `RETRY_MAX`.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// What a write changed, for one Voyado tenant (`identity`: the tenant as cache keys name it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum Change {
    /// One contact: the part of it the write changed (an edit its profile, a redeem or an undo
    /// its offers), so its answers of that part and its rendered cards.
    Contact {
        identity: String,
        contact: String,
        /// Absent in messages from replicas that did not tell parts apart: everything.
        #[serde(default)]
        part: Part,
    },
    /// The tenant's key → contact id entries, not-found ones included (a create).
    Keys { identity: String },
}

/// What of a contact a write changed, and so which of its remembered answers it makes stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// The contact itself: attributes, preferences, consents (`GET /contacts/{id}`), and the
    /// key → contact answers that found it.
    Profile,
    /// What it may spend: promotions, bonus checks, point accounts, purchases.
    Offers,
    /// Both (a change of contact type, or a write whose reach is not known).
    #[default]
    All,
}

impl Part {
    /// Whether a write that changed `self` makes an answer about `read` stale.
    pub fn reaches(self, read: Part) -> bool {
        self == Part::All || read == Part::All || self == read
    }
}

/// What a subscriber hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Another replica's write changed these.
    Changed(Vec<Change>),
    /// The subscription is back after it dropped (or it could not be made at once): writes
    /// announced meanwhile were missed, so anything cached before now may be stale.
    Gap,
}

/// One message on the channel: borrowed to send, owned once received.
#[derive(Debug, Serialize, Deserialize)]
struct Message<'a> {
    origin: Cow<'a, str>,
    changes: Cow<'a, [Change]>,
}

/// A running subscriber; dropping it stops it.
pub struct Subscription {
    _listener: Background,
}

impl Cluster {
    /// Tells every other replica what a write changed; returns once Redis has passed it on.
    pub async fn publish(&self, changes: &[Change]) -> Result<(), Down> {
        let payload = serde_json::to_vec(&Message {
            origin: Cow::Borrowed(&self.inner.origin),
            changes: Cow::Borrowed(changes),
        })
        .map_err(|_| Down::Refused)?;
        let channel = self.inner.keys.channel("writes");
        self.call(|mut connection| async move {
            redis::cmd("PUBLISH")
                .arg(channel)
                .arg(payload)
                .query_async::<()>(&mut connection)
                .await
        })
        .await
    }

    /// Calls `on_notice` with every other replica's changes, in the order they were
    /// published, for as long as the returned subscription lives. While Redis is down the
    /// subscriber waits; once it answers again it subscribes anew and reports the gap.
    pub fn subscribe(&self, on_notice: impl Fn(Notice) + Send + Sync + 'static) -> Subscription {
        let listener = Listener {
            client: self.inner.client.clone(),
            channel: self.inner.keys.channel("writes"),
            origin: self.inner.origin.clone(),
            health: self.inner.link.health.watch(),
            on_notice: Arc::new(on_notice),
        };
        Subscription {
            _listener: Background(tokio::spawn(listener.run())),
        }
    }
}

struct Listener {
    client: redis::Client,
    channel: String,
    origin: Box<str>,
    health: watch::Receiver<bool>,
    on_notice: Arc<dyn Fn(Notice) + Send + Sync>,
}

impl Listener {
    async fn run(mut self) {
        // Whether messages may have been missed since the last subscription, or since this
        // subscriber began, if Redis was not up then (the caches may already hold answers).
        let mut missed = !*self.health.borrow();
        let mut retry = RETRY_MIN;
        loop {
            // The probe knows best when Redis is back; no point dialling before.
            if self.health.wait_for(|up| *up).await.is_err() {
                return;
            }
            let Ok(Ok(mut pubsub)) = tokio::time::timeout(CONNECT_TIMEOUT, self.subscribed()).await
            else {
                missed = true;
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
                continue;
            };
            retry = RETRY_MIN;
            if std::mem::replace(&mut missed, true) {
                (self.on_notice)(Notice::Gap);
            }
            let mut messages = pubsub.on_message();
            loop {
                tokio::select! {
                    message = messages.next() => match message {
                        Some(message) => self.deliver(message.get_payload_bytes()),
                        // The connection dropped.
                        None => break,
                    },
                    // Redis went down for the probe: a connection that only looks open (a
                    // Redis that stopped answering) would deliver nothing, so start afresh.
                    gone = async { self.health.wait_for(|up| !*up).await.is_err() } => {
                        if gone {
                            return;
                        }
                        break;
                    }
                }
            }
        }
    }

    async fn subscribed(&self) -> redis::RedisResult<redis::aio::PubSub> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(&self.channel).await?;
        Ok(pubsub)
    }

    fn deliver(&self, payload: &[u8]) {
        match serde_json::from_slice::<Message>(payload) {
            Ok(message) if *message.origin == *self.origin => {}
            Ok(message) => (self.on_notice)(Notice::Changed(message.changes.into_owned())),
            // Another version's message, or not ours: nothing it names can be dropped.
            Err(_) => tracing::debug!("an unreadable write notification was ignored"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_travel_as_tagged_json() {
        let changes = vec![
            Change::Contact {
                identity: "https://a.voyado.com#00ff".into(),
                contact: "c1".into(),
                part: Part::Offers,
            },
            Change::Keys {
                identity: "https://a.voyado.com#00ff".into(),
            },
        ];
        let text = serde_json::to_string(&Message {
            origin: "o".into(),
            changes: Cow::Borrowed(&changes),
        })
        .unwrap();
        assert_eq!(
            text,
            r##"{"origin":"o","changes":[{"what":"contact","identity":"https://a.voyado.com#00ff","contact":"c1","part":"offers"},{"what":"keys","identity":"https://a.voyado.com#00ff"}]}"##
        );
        let back: Message = serde_json::from_str(&text).unwrap();
        assert_eq!(back.changes, changes);
        // A message from a replica that names no part changed all of the contact.
        let old = r#"{"origin":"o","changes":[{"what":"contact","identity":"t","contact":"c1"}]}"#;
        let back: Message = serde_json::from_str(old).unwrap();
        let all = Change::Contact {
            identity: "t".into(),
            contact: "c1".into(),
            part: Part::All,
        };
        assert_eq!(*back.changes, [all]);
    }
}
