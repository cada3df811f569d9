//! The tokio runtime behind every client of the process (two worker
//! threads; started on first use).

use std::sync::OnceLock;

pub(crate) fn handle() -> tokio::runtime::Handle {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("sealcast")
                .enable_all()
                .build()
                .expect("the sealcast runtime starts")
        })
        .handle()
        .clone()
}
