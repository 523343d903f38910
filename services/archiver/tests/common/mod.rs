//! What the archiver's test suites share.

use kinesis_consumer::Worker;
use tokio_util::sync::CancellationToken;

/// A worker on a runtime of its own, so that killing it ends every task it spawned.
pub struct Running {
    stop: CancellationToken,
    runtime: tokio::runtime::Runtime,
    done: tokio::sync::oneshot::Receiver<()>,
}

impl Running {
    pub fn spawn(worker: Worker) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let stop = CancellationToken::new();
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let token = stop.clone();
        runtime.spawn(async move {
            worker.run(token).await;
            let _ = done_tx.send(());
        });
        Self {
            stop,
            runtime,
            done,
        }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        self.done.await.expect("worker stopped");
        self.runtime.shutdown_background();
    }

    /// Like kill -9: every task of the worker ends where it is; nothing is flushed, released
    /// or renewed again (its leases expire).
    pub async fn kill(self) {
        self.runtime.shutdown_background();
    }
}
