//! inotify on the log directory: a job's log file is created the moment it is dequeued, so
//! its creation time is the dequeue time.

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When each file in the watched directory was created, recorded by a background thread.
pub struct LogWatch {
    created: Arc<Mutex<HashMap<String, DateTime<Utc>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LogWatch {
    /// Starts watching `dir` (created if missing).
    pub fn start(dir: &Path) -> LogWatch {
        std::fs::create_dir_all(dir).expect("logs dir");
        let created = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: plain inotify calls on a descriptor this function owns.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(fd >= 0, "inotify_init1");
        // SAFETY: `path` is a valid NUL-terminated string.
        let wd = unsafe { libc::inotify_add_watch(fd, path.as_ptr(), libc::IN_CREATE) };
        assert!(wd >= 0, "inotify_add_watch");
        let (sink, stopped) = (created.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(3600);
            let mut buf = vec![0u8; 64 * 1024];
            while !stopped.load(Ordering::Relaxed) && Instant::now() < deadline {
                let mut pfd = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                let ready = unsafe { libc::poll(&mut pfd, 1, 50) };
                if ready <= 0 {
                    continue;
                }
                let at = Utc::now();
                // SAFETY: reading into a buffer we own, within its length.
                let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
                if n <= 0 {
                    continue;
                }
                let mut off = 0usize;
                let header = std::mem::size_of::<libc::inotify_event>();
                while off + header <= n as usize {
                    // SAFETY: the kernel wrote whole events; read_unaligned copes with alignment.
                    let ev: libc::inotify_event = unsafe {
                        std::ptr::read_unaligned(
                            buf.as_ptr().add(off).cast::<libc::inotify_event>(),
                        )
                    };
                    let name_bytes = &buf[off + header..off + header + ev.len as usize];
                    let name = String::from_utf8_lossy(name_bytes)
                        .trim_end_matches('\0')
                        .to_string();
                    sink.lock().expect("watch").entry(name).or_insert(at);
                    off += header + ev.len as usize;
                }
            }
            // SAFETY: closing the descriptor opened above, once.
            unsafe { libc::close(fd) };
        });
        LogWatch {
            created,
            stop,
            thread: Some(thread),
        }
    }

    /// When `name` was created, if it was.
    pub fn created(&self, name: &str) -> Option<DateTime<Utc>> {
        self.created.lock().expect("watch").get(name).copied()
    }
}

impl Drop for LogWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
