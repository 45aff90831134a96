//! Watches only the Secrets that probes name: one watch per referenced (namespace, name), with
//! the field selector `metadata.name=<name>` (list + watch of exactly that object), started and
//! stopped as references come and go. A Secret that does not exist is reported as
//! [`SecretState::Missing`]; one that can't be read (e.g. forbidden) as
//! [`SecretState::Error`]: both make the probe fail with a reason, never drop it.

use std::collections::{BTreeSet, HashMap};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::index::ObjectKey;
use crate::run::Input;
use crate::targets::SecretState;

pub struct SecretWatches {
    client: Client,
    tx: mpsc::Sender<Input>,
    tasks: HashMap<ObjectKey, JoinHandle<()>>,
}

impl SecretWatches {
    pub fn new(client: Client, tx: mpsc::Sender<Input>) -> Self {
        SecretWatches {
            client,
            tx,
            tasks: HashMap::new(),
        }
    }

    /// Starts watches for new references and stops those no longer wanted; returns the keys
    /// whose watches stopped.
    pub fn sync(&mut self, wanted: &BTreeSet<ObjectKey>) -> Vec<ObjectKey> {
        let stopped: Vec<ObjectKey> = self
            .tasks
            .keys()
            .filter(|k| !wanted.contains(*k))
            .cloned()
            .collect();
        for k in &stopped {
            if let Some(task) = self.tasks.remove(k) {
                task.abort();
            }
            tracing::debug!(ns = %k.0, name = %k.1, "stopped watching secret");
        }
        for k in wanted {
            if !self.tasks.contains_key(k) {
                tracing::debug!(ns = %k.0, name = %k.1, "watching secret");
                let task = tokio::spawn(watch_one(self.client.clone(), k.clone(), self.tx.clone()));
                self.tasks.insert(k.clone(), task);
            }
        }
        stopped
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

impl Drop for SecretWatches {
    fn drop(&mut self) {
        for (_, t) in self.tasks.drain() {
            t.abort();
        }
    }
}

async fn watch_one(client: Client, key: ObjectKey, tx: mpsc::Sender<Input>) {
    let api: Api<Secret> = Api::namespaced(client, &key.0);
    let config = watcher::Config::default().fields(&format!("metadata.name={}", key.1));
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    let mut known = false;
    let mut found: Option<SecretState> = None;
    while let Some(event) = stream.next().await {
        let state = match event {
            Ok(Event::Init) => {
                found = None;
                continue;
            }
            Ok(Event::InitApply(s)) => {
                found = Some(SecretState::from_secret(&s));
                continue;
            }
            Ok(Event::InitDone) => found.take().unwrap_or(SecretState::Missing),
            Ok(Event::Apply(s)) => SecretState::from_secret(&s),
            Ok(Event::Delete(_)) => SecretState::Missing,
            Err(e) => {
                tracing::warn!(ns = %key.0, name = %key.1, error = %e, "watching secret failed; retrying");
                if known {
                    continue;
                }
                SecretState::Error(describe_watch_error(&e))
            }
        };
        known = !matches!(state, SecretState::Error(_));
        if tx.send(Input::Secret(key.clone(), state)).await.is_err() {
            return;
        }
    }
}

fn describe_watch_error(e: &watcher::Error) -> String {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s)) => {
            format!("cannot be read: {}", s.message)
        }
        other => format!("cannot be read: {other}"),
    }
}
