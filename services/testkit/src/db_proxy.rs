//! A loopback TCP proxy in front of the test PostgreSQL, so a test can take "the database" away
//! from the services under test (and give it back) without touching the shared cluster that
//! other tests use. While down it cuts every open connection and refuses new ones.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
pub struct DbProxy {
    pub addr: SocketAddr,
    url: String,
    up: Arc<AtomicBool>,
    /// Cancelled to cut the connections of the current "up" period.
    cut: Arc<std::sync::Mutex<CancellationToken>>,
    shutdown: CancellationToken,
}

/// `<host dir>/.s.PGSQL.<port>` from a socket URL such as
/// `postgresql://postgres:@/db?host=/path/to/pgdata` (port 5432 unless given).
fn socket_path(url: &str) -> PathBuf {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .map(str::to_owned)
    };
    let host = param("host").expect("the test database URL names a socket directory (host=)");
    let port = param("port").unwrap_or_else(|| "5432".into());
    PathBuf::from(host).join(format!(".s.PGSQL.{port}"))
}

impl DbProxy {
    /// Proxies to the Unix socket of `database_url` (a test database of the local cluster).
    pub async fn start(database_url: &str) -> Self {
        let socket = socket_path(database_url);
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("cannot bind the proxy port");
        let addr = listener.local_addr().expect("bound address");
        let (base, _) = database_url.split_once('?').unwrap_or((database_url, ""));
        let path_start = base
            .find("//")
            .and_then(|i| base[i + 2..].find('/').map(|j| i + 2 + j))
            .expect("a database name in the URL");
        let database = &base[path_start + 1..];
        let url = format!("postgresql://postgres@{addr}/{database}?sslmode=disable");
        let up = Arc::new(AtomicBool::new(true));
        let cut = Arc::new(std::sync::Mutex::new(CancellationToken::new()));
        let shutdown = CancellationToken::new();
        let (task_up, task_cut, task_shutdown) = (up.clone(), cut.clone(), shutdown.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = task_shutdown.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((client, _)) = accepted else { continue };
                if !task_up.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let cut = task_cut
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                let socket = socket.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        () = cut.cancelled() => {}
                        () = pipe(client, socket) => {}
                    }
                });
            }
        });
        Self {
            addr,
            url,
            up,
            cut,
            shutdown,
        }
    }

    /// The URL the services should use (TCP to this proxy).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database goes away: open connections are cut, new ones refused.
    pub fn stop(&self) {
        self.up.store(false, Ordering::SeqCst);
        let mut cut = self
            .cut
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cut.cancel();
        *cut = CancellationToken::new();
    }

    /// The database is back.
    pub fn resume(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for DbProxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.stop();
    }
}

async fn pipe(mut client: TcpStream, socket: PathBuf) {
    let Ok(mut server) = UnixStream::connect(&socket).await else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}

#[cfg(test)]
mod tests {
    use super::socket_path;

    #[test]
    fn the_socket_path_comes_from_the_host_and_port_parameters() {
        assert_eq!(
            socket_path("postgresql://postgres:@/db?host=/data/pg"),
            std::path::PathBuf::from("/data/pg/.s.PGSQL.5432")
        );
        assert_eq!(
            socket_path("postgresql://postgres:@/db?host=/data/pg&port=5544"),
            std::path::PathBuf::from("/data/pg/.s.PGSQL.5544")
        );
    }
}
