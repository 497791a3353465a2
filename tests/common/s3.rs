//! A real S3-protocol server for a test: moto's standalone server (`moto_server`, from PyPI,
//! installed by scripts/test) as its own process on a free loopback port, with one bucket,
//! stopped when dropped. tickbot talks to it with `object_store`, as to any S3 service.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tickbot::logs::{LogStore, S3Settings};

pub struct TestS3 {
    pub endpoint: String,
    pub bucket: String,
    child: Child,
}

/// `moto_server` from `$TICKBOT_TEST_MOTO` (set by scripts/test) or the `PATH`.
fn moto_server() -> String {
    std::env::var("TICKBOT_TEST_MOTO").unwrap_or_else(|_| "moto_server".into())
}

impl TestS3 {
    pub fn start() -> TestS3 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(moto_server())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server (pip install 'moto[server]'; scripts/test does)");
        let host = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&host).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not start on {host}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let s3 = TestS3 {
            endpoint: format!("http://{host}"),
            bucket: "tickbot-logs".into(),
            child,
        };
        let made = Command::new("curl")
            .args([
                "-sf",
                "-X",
                "PUT",
                &format!("{}/{}", s3.endpoint, s3.bucket),
            ])
            .status()
            .expect("curl");
        assert!(made.success(), "cannot create the test bucket");
        s3
    }

    pub fn settings(&self) -> S3Settings {
        S3Settings {
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            access_key_id: Some("tickbot-test".into()),
            secret_access_key: Some(tickbot::config::Secret::new("tickbot-test-secret")),
        }
    }

    /// The store `s3://<bucket>/<prefix>` as a process with state directory `state` opens it.
    pub fn store(&self, prefix: &str, state: &std::path::Path) -> LogStore {
        LogStore::open(
            &format!("s3://{}/{prefix}", self.bucket),
            &self.settings(),
            state,
        )
        .expect("the S3 log store")
    }
}

impl Drop for TestS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
