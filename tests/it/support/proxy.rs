//! A TCP proxy on loopback in front of PostgreSQL that a test can cut, blackhole and restore,
//! to play a database outage without touching the server other tests share.
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const UP: u8 = 0;
/// Connections end and new ones are refused at once: the server is down.
const CUT: u8 = 1;
/// Connections stay open and nothing passes either way: a failover, a partition.
const BLACKHOLE: u8 = 2;

pub struct Proxy {
    pub port: u16,
    mode: Arc<AtomicU8>,
    /// Bumped on every change of mode, so live connections look again.
    changes: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn to(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(UP));
        let (changes, _) = watch::channel(0u64);
        let (accept_mode, accept_changes) = (mode.clone(), changes.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut changed = accept_changes.subscribe();
                match accept_mode.load(Ordering::SeqCst) {
                    CUT => continue, // dropped: the connection is refused at once
                    BLACKHOLE => {
                        // Accepted, and never answered, until the network heals; then reset.
                        tokio::spawn(async move {
                            let _held = client;
                            let _ = changed.changed().await;
                        });
                        continue;
                    }
                    _ => {}
                }
                let target = target.clone();
                let mode = accept_mode.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
                        _ = changed.changed() => {}
                    }
                    if mode.load(Ordering::SeqCst) == BLACKHOLE {
                        // Both ends stay open, and nothing passes, until the next change.
                        let _ = changed.changed().await;
                    }
                });
            }
        });
        Proxy {
            port,
            mode,
            changes,
            task,
        }
    }

    fn set(&self, mode: u8) {
        if self.mode.swap(mode, Ordering::SeqCst) != mode {
            self.changes.send_modify(|n| *n += 1);
        }
    }

    /// Every connection through the proxy ends, and new ones are refused.
    pub fn cut(&self) {
        self.set(CUT);
    }

    /// Connections stay open but nothing passes, and new ones are accepted and never answered.
    pub fn blackhole(&self) {
        self.set(BLACKHOLE);
    }

    /// Traffic passes again; connections held in a blackhole are reset, as after a failover.
    pub fn restore(&self) {
        self.set(UP);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
