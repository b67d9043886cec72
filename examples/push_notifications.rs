//! A push-notification service, twice: once leaking a task per message, once fixed.
//!
//! `cargo run --example push_notifications` runs the same scenario against both and prints what
//! `#[leak_check]` says about each.

use std::panic;
use std::sync::LazyLock;
use std::time::Duration;

use leak_check::leak_check;
use tokio::runtime::Runtime;

/// The service's runtime lives as long as the process, as a server's does: nothing cancels the
/// service's tasks for us.
static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
});

#[derive(Debug)]
pub struct Notification {
    pub device: u32,
    pub text: String,
}

/// The device is offline: it never acknowledges.
fn acknowledged(_notification: &Notification) -> bool {
    false
}

mod leaky {
    use super::*;
    use tokio::sync::mpsc;

    pub struct PushService {
        inbox: mpsc::Sender<Notification>,
    }

    impl PushService {
        pub fn start() -> PushService {
            let (inbox, mut incoming) = mpsc::channel::<Notification>(64);
            let requeue = inbox.clone();
            leak_check::Builder::new()
                .name("push-dispatcher")
                .spawn(async move {
                    while let Some(notification) = incoming.recv().await {
                        // A task per message, detached, with no way to stop it; each holds a
                        // sender of the inbox, so the dispatcher's channel never closes either.
                        leak_check::Builder::new()
                            .name("push-delivery")
                            .spawn(deliver(notification, requeue.clone()));
                    }
                });
            PushService { inbox }
        }

        pub async fn push(&self, notification: Notification) {
            self.inbox
                .send(notification)
                .await
                .expect("the dispatcher is running");
        }
    }

    async fn deliver(notification: Notification, _requeue: mpsc::Sender<Notification>) {
        let mut retry = tokio::time::interval(Duration::from_millis(20));
        loop {
            retry.tick().await;
            if acknowledged(&notification) {
                return;
            }
        }
    }
}

mod fixed {
    use super::*;
    use tokio::sync::mpsc;
    use tokio::task::{JoinHandle, JoinSet};
    use tokio_util::sync::CancellationToken;

    pub struct PushService {
        inbox: mpsc::Sender<Notification>,
        stop: CancellationToken,
        dispatcher: JoinHandle<()>,
    }

    impl PushService {
        pub fn start() -> PushService {
            let (inbox, mut incoming) = mpsc::channel::<Notification>(64);
            // Deliveries may re-queue, but must not keep the inbox open: a weak sender.
            let requeue = inbox.downgrade();
            let stop = CancellationToken::new();
            let stopping = stop.clone();
            let dispatcher = leak_check::Builder::new()
                .name("push-dispatcher")
                .spawn(async move {
                    let mut deliveries = JoinSet::new();
                    while let Some(notification) = incoming.recv().await {
                        let delivery = deliver(notification, requeue.clone(), stopping.clone());
                        leak_check::Builder::new()
                            .name("push-delivery")
                            .spawn_in(&mut deliveries, delivery);
                    }
                    // The inbox is closed: stop and join every delivery still retrying.
                    stopping.cancel();
                    while deliveries.join_next().await.is_some() {}
                });
            PushService {
                inbox,
                stop,
                dispatcher,
            }
        }

        pub async fn push(&self, notification: Notification) {
            self.inbox
                .send(notification)
                .await
                .expect("the dispatcher is running");
        }

        /// Closes the inbox, cancels retries, and waits for every task to finish.
        pub async fn shutdown(self) {
            drop(self.inbox);
            self.stop.cancel();
            self.dispatcher.await.expect("the dispatcher finished");
        }
    }

    async fn deliver(
        notification: Notification,
        _requeue: mpsc::WeakSender<Notification>,
        stop: CancellationToken,
    ) {
        let mut retry = tokio::time::interval(Duration::from_millis(20));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = retry.tick() => {
                    if acknowledged(&notification) {
                        return;
                    }
                }
            }
        }
    }
}

fn burst() -> impl Iterator<Item = Notification> {
    (1..=3).map(|device| Notification {
        device,
        text: format!("hello, device {device}"),
    })
}

/// The leaky service's scenario, checked: it panics with the report.
#[leak_check]
pub fn leaky_service_sends_a_burst() {
    RUNTIME.block_on(async {
        let service = leaky::PushService::start();
        for notification in burst() {
            service.push(notification).await;
        }
    });
}

/// The fixed service's scenario, checked: it returns.
#[leak_check]
pub fn fixed_service_sends_a_burst() {
    RUNTIME.block_on(async {
        let service = fixed::PushService::start();
        for notification in burst() {
            service.push(notification).await;
        }
        service.shutdown().await;
    });
}

fn main() {
    // The leak report arrives as a panic; print it once, below, rather than through the hook.
    panic::set_hook(Box::new(|_| {}));
    for (name, scenario) in [
        ("leaky", leaky_service_sends_a_burst as fn()),
        ("fixed", fixed_service_sends_a_burst as fn()),
    ] {
        println!("=== {name} push service ===");
        match panic::catch_unwind(scenario) {
            Ok(()) => {
                println!("leak-check: clean, every task the scenario spawned has finished.\n")
            }
            Err(payload) => {
                let report = payload
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .unwrap_or("(no report)");
                println!("{report}\n");
            }
        }
    }
}
