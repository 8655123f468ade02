//! The HTTP transport of the remote cache (`pie::remote::HttpCache`) against a real nginx serving WebDAV on a
//! loopback port (`dev_util::nginx`, which runs `.ci/nginx-cache`), and against small hand-made servers for what
//! nginx does not do on request (5xx statuses, oversized bodies, silence).
//!
//! Without nginx these tests print a notice and pass, except in CI, where they fail: `.ci/run` installs it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use std::{env, fs, thread};

use dev_util::nginx::{free_port, Nginx};
use pie::remote::proto::{ActionResult, Message, OutputFile};
use pie::remote::{Digest, HttpCache, RemoteError, RemoteStats};

fn client(server: &Nginx) -> HttpCache {
    HttpCache::new(&server.url()).unwrap()
}

fn action(output: &Digest) -> ActionResult {
    ActionResult {
        output_files: vec![OutputFile::new("out/a.txt", output, false)],
        exit_code: 0,
    }
}

fn count_files(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    entries
        .map(|entry| entry.unwrap().path())
        .map(|path| if path.is_dir() { count_files(&path) } else { 1 })
        .sum()
}

fn reason(cache: &HttpCache) -> String {
    match cache.unavailable() {
        Some(RemoteError::Unavailable { reason, .. }) => reason.clone(),
        other => panic!("expected the cache to be unavailable, it is {other:?}"),
    }
}

#[test]
fn blobs_round_trip() {
    let Some(server) = Nginx::start() else { return };
    let cache = client(&server);
    let digest = cache.put_blob(b"hello");
    assert_eq!(digest, Digest::of(b"hello"));
    assert_eq!(fs::read(server.entry("cas", &digest.hex())).unwrap(), b"hello");
    assert!(cache.has_blob(&digest));
    assert_eq!(cache.get_blob(&digest).as_deref(), Some(&b"hello"[..]));
    // The empty blob is a blob like any other.
    let empty = cache.put_blob(b"");
    assert_eq!(cache.get_blob(&empty), Some(Vec::new()));
    let stats = cache.stats();
    assert_eq!(
        (stats.hits, stats.misses, stats.errors, stats.bytes_up, stats.bytes_down),
        (2, 0, 0, 5, 5)
    );
    assert!(cache.unavailable().is_none());
}

#[test]
fn action_results_round_trip() {
    let Some(server) = Nginx::start() else { return };
    let cache = client(&server);
    let key = Digest::of(b"task");
    let result = action(&cache.put_blob(b"output"));
    cache.put_action(&key, &result);
    assert_eq!(cache.get_action(&key), Some(result.clone()));
    // An entry is replaced by a later upload.
    let newer = action(&cache.put_blob(b"newer output"));
    cache.put_action(&key, &newer);
    assert_eq!(cache.get_action(&key), Some(newer));
    assert_eq!(cache.stats().errors, 0);
}

#[test]
fn absent_entries_are_misses() {
    let Some(server) = Nginx::start() else { return };
    let cache = client(&server);
    let key = Digest::of(b"never stored");
    assert_eq!(cache.get_action(&key), None);
    assert_eq!(cache.get_blob(&key), None);
    assert!(!cache.has_blob(&key));
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.rejected, stats.errors), (0, 2, 0, 0));
    // A miss is no failure: the cache is still used.
    assert!(cache.unavailable().is_none());
    let digest = cache.put_blob(b"x");
    assert!(cache.has_blob(&digest));
}

#[test]
fn tampered_blob_is_a_miss() {
    let Some(server) = Nginx::start() else { return };
    let cache = client(&server);
    let digest = cache.put_blob(b"genuine");
    let file = server.entry("cas", &digest.hex());
    // Same size, other bytes; then other size.
    for tampered in [&b"GENUINE"[..], b"genuine and more", b""] {
        fs::write(&file, tampered).unwrap();
        assert_eq!(cache.get_blob(&digest), None, "{:?}", String::from_utf8_lossy(tampered));
    }
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.rejected, stats.errors), (0, 3, 3, 0));
    // A bad entry says nothing about the server: the cache is still used, and an upload repairs the entry.
    assert!(cache.unavailable().is_none());
    cache.put_blob(b"genuine");
    assert_eq!(cache.get_blob(&digest).as_deref(), Some(&b"genuine"[..]));
}

#[test]
fn garbage_action_entry_is_a_miss() {
    let Some(server) = Nginx::start() else { return };
    let cache = client(&server);
    let key = Digest::of(b"task");
    cache.put_action(&key, &action(&Digest::of(b"output")));
    let file = server.entry("ac", &key.hex());
    let malformed_digest = ActionResult {
        output_files: vec![OutputFile {
            path: "a".into(),
            digest: Some(pie::remote::proto::Digest {
                hash: "not hex".into(),
                size_bytes: 1,
            }),
            is_executable: false,
        }],
        exit_code: 0,
    };
    let missing_digest = ActionResult {
        output_files: vec![OutputFile {
            path: "a".into(),
            ..OutputFile::default()
        }],
        exit_code: 0,
    };
    let garbage: [Vec<u8>; 4] = [
        vec![0xff; 64],
        b"<html>502 Bad Gateway</html>".to_vec(),
        malformed_digest.encode_to_vec(),
        missing_digest.encode_to_vec(),
    ];
    for bytes in &garbage {
        fs::write(&file, bytes).unwrap();
        assert_eq!(cache.get_action(&key), None, "{bytes:?}");
    }
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.rejected, stats.errors), (0, 4, 4, 0));
    assert!(cache.unavailable().is_none());
}

#[test]
fn stopped_server_costs_one_failure_and_then_no_requests() {
    let Some(mut server) = Nginx::start() else { return };
    let cache = client(&server);
    let key = Digest::of(b"task");
    let blob = cache.put_blob(b"output");
    cache.put_action(&key, &action(&blob));
    assert!(cache.get_action(&key).is_some());
    let before = cache.stats();

    server.stop();
    assert_eq!(cache.get_action(&key), None);
    let reason = reason(&cache);
    assert!(reason.starts_with(&format!("GET /ac/{}", key.hex())), "{reason}");
    // The first request and its two retries.
    assert_eq!(cache.stats().requests, before.requests + 3);
    assert_eq!(cache.stats().errors, 1);

    let after_failure = cache.stats();
    for _ in 0..10 {
        assert_eq!(cache.get_action(&key), None);
        assert_eq!(cache.get_blob(&blob), None);
        assert!(!cache.has_blob(&blob));
        cache.put_blob(b"more");
        cache.put_action(&key, &ActionResult::default());
    }
    assert_eq!(cache.stats(), after_failure);
}

/// Runs `stopped_server_child` in a child process and reads its stderr: one warning, however many operations.
#[test]
fn stopped_server_warns_once() {
    let output = Command::new(env::current_exe().unwrap())
        .args(["stopped_server_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the child failed:\n{stdout}\n{stderr}");
    if stdout.contains("child: skipped") {
        return;
    }
    assert!(stdout.contains("child: done"), "the child did not run:\n{stdout}");
    let warnings: Vec<&str> = stderr.lines().filter(|line| line.contains("remote cache")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    let warning = warnings[0];
    assert!(
        warning.starts_with("pie: remote cache at http://127.0.0.1:"),
        "{warning}"
    );
    assert!(warning.ends_with("; building locally"), "{warning}");
    assert!(warning.contains("unavailable (GET /ac/"), "{warning}");
}

const CHILD: &str = "PIE_REMOTE_TEST_CHILD";

/// Half of `stopped_server_warns_once`; does nothing unless that test started it.
#[test]
fn stopped_server_child() {
    if env::var_os(CHILD).is_none() {
        return;
    }
    let Some(mut server) = Nginx::start() else {
        println!("child: skipped");
        return;
    };
    let cache = client(&server);
    let key = Digest::of(b"task");
    cache.put_action(&key, &action(&cache.put_blob(b"output")));
    server.stop();
    for _ in 0..10 {
        assert_eq!(cache.get_action(&key), None);
        cache.put_blob(b"more");
    }
    assert_eq!(cache.stats().errors, 1);
    println!("child: done");
}

#[test]
fn read_only_client_never_writes() {
    let Some(server) = Nginx::start() else { return };
    let cache = client(&server).read_only(true);
    let key = Digest::of(b"task");
    let blob = cache.put_blob(b"output");
    assert_eq!(blob, Digest::of(b"output"));
    cache.put_action(&key, &action(&blob));
    assert_eq!(count_files(&server.data_dir()), 0);
    assert_eq!(cache.get_action(&key), None);
    assert_eq!(cache.stats().bytes_up, 0);

    // It reads what a read-write client wrote.
    let writer = client(&server);
    writer.put_action(&key, &action(&writer.put_blob(b"output")));
    assert_eq!(cache.get_action(&key), Some(action(&blob)));
    assert_eq!(cache.get_blob(&blob).as_deref(), Some(&b"output"[..]));
}

#[test]
fn auth_header_reaches_the_server() {
    let Some(server) = Nginx::start_requiring_auth("Bearer x") else {
        return;
    };
    let cache = client(&server).auth_header(Some("Bearer x".into()));
    let key = Digest::of(b"task");
    let blob = cache.put_blob(b"output");
    cache.put_action(&key, &action(&blob));
    assert_eq!(cache.get_action(&key), Some(action(&blob)));
    assert_eq!(cache.get_blob(&blob).as_deref(), Some(&b"output"[..]));
    assert_eq!(cache.stats().errors, 0);
}

#[test]
fn wrong_auth_header_is_one_failure_and_misses() {
    let Some(server) = Nginx::start_requiring_auth("Bearer x") else {
        return;
    };
    for auth in [Some("Bearer y"), None] {
        let cache = client(&server).auth_header(auth.map(String::from));
        let key = Digest::of(b"task");
        assert_eq!(cache.get_action(&key), None);
        assert!(reason(&cache).ends_with("401 Unauthorized"), "{}", reason(&cache));
        // A refusal is not retried.
        assert_eq!(
            cache.stats(),
            RemoteStats {
                errors: 1,
                requests: 1,
                ..RemoteStats::default()
            }
        );
        cache.put_blob(b"output");
        cache.put_action(&key, &action(&Digest::of(b"output")));
        assert_eq!(count_files(&server.data_dir()), 0);
    }
}

#[test]
fn unreachable_port_returns_quickly() {
    let cache = HttpCache::new(&format!("http://127.0.0.1:{}/cache", free_port())).unwrap();
    let start = Instant::now();
    assert_eq!(cache.get_action(&Digest::of(b"task")), None);
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    // A refused connection is retried twice.
    assert_eq!(
        cache.stats(),
        RemoteStats {
            errors: 1,
            requests: 3,
            ..RemoteStats::default()
        }
    );
    assert!(cache.unavailable().unwrap().to_string().contains("127.0.0.1"));
}

#[test]
fn silent_server_times_out_once() {
    // Connections are accepted by the kernel's backlog, but nobody ever answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/cache", listener.local_addr().unwrap());
    let cache = HttpCache::new(&url)
        .unwrap()
        .request_timeout(Duration::from_millis(300));
    let start = Instant::now();
    assert_eq!(cache.get_blob(&Digest::of(b"x")), None);
    assert!(start.elapsed() < Duration::from_secs(3), "{:?}", start.elapsed());
    assert!(reason(&cache).contains("timed out"), "{}", reason(&cache));
    // A timeout is not retried: it would cost the whole timeout again.
    assert_eq!(
        cache.stats(),
        RemoteStats {
            errors: 1,
            requests: 1,
            ..RemoteStats::default()
        }
    );
    drop(listener);
}

/// A server that answers the first request of each of `responses.len()` connections with the next response and
/// closes the connection. Returns the base URL; the thread ends after the last response.
fn canned_server(responses: Vec<Vec<u8>>) -> (String, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/cache", listener.local_addr().unwrap());
    let handle = thread::spawn(move || {
        for response in responses {
            let (mut stream, _) = listener.accept().unwrap();
            read_request_head(&mut stream);
            // The client may have hung up once it saw enough (an oversized body).
            let _ = stream.write_all(&response);
        }
    });
    (url, handle)
}

fn read_request_head(stream: &mut TcpStream) {
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap() == 1 {
        head.push(byte[0]);
    }
}

fn response(status: &str, body: &[u8]) -> Vec<u8> {
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend(body);
    response
}

#[test]
fn server_errors_are_retried() {
    let (url, server) = canned_server(vec![
        response("503 Service Unavailable", b""),
        response("500 Internal Server Error", b""),
        response("200 OK", b"hello"),
    ]);
    let cache = HttpCache::new(&url).unwrap();
    assert_eq!(cache.get_blob(&Digest::of(b"hello")).as_deref(), Some(&b"hello"[..]));
    assert_eq!(
        cache.stats(),
        RemoteStats {
            hits: 1,
            requests: 3,
            bytes_down: 5,
            ..RemoteStats::default()
        }
    );
    server.join().unwrap();
}

#[test]
fn server_errors_beyond_the_retries_are_one_failure() {
    let (url, server) = canned_server(vec![response("500 Internal Server Error", b""); 2]);
    let cache = HttpCache::new(&url).unwrap().retries(1);
    assert_eq!(cache.get_action(&Digest::of(b"task")), None);
    assert!(
        reason(&cache).ends_with("500 Internal Server Error"),
        "{}",
        reason(&cache)
    );
    assert_eq!(
        cache.stats(),
        RemoteStats {
            errors: 1,
            requests: 2,
            ..RemoteStats::default()
        }
    );
    server.join().unwrap();
}

#[test]
fn oversized_bodies_are_refused_without_reading_them() {
    let announced = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\nConnection: close\r\n\r\nabc".to_vec();
    // No length announced: the body runs until the connection closes, past the limit.
    let mut unannounced = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
    unannounced.extend(vec![b'x'; 64 * 1024]);
    let (url, server) = canned_server(vec![announced, unannounced]);
    let cache = HttpCache::new(&url).unwrap().max_body_bytes(1024);
    let key = Digest::of(b"task");
    assert_eq!(cache.get_action(&key), None);
    assert_eq!(cache.get_action(&key), None);
    let stats = cache.stats();
    assert_eq!((stats.misses, stats.rejected, stats.errors), (2, 2, 0));
    assert!(stats.bytes_down <= 2048, "{stats:?}");
    server.join().unwrap();
}

#[test]
fn threads_share_one_client() {
    let Some(server) = Nginx::start() else { return };
    let cache = client(&server);
    thread::scope(|scope| {
        for t in 0..8 {
            let cache = &cache;
            scope.spawn(move || {
                for i in 0..20 {
                    let contents = format!("blob {t} {i}");
                    let digest = cache.put_blob(contents.as_bytes());
                    let key = Digest::of(format!("task {t} {i}").as_bytes());
                    cache.put_action(&key, &action(&digest));
                    assert_eq!(cache.get_action(&key), Some(action(&digest)));
                    assert_eq!(cache.get_blob(&digest).as_deref(), Some(contents.as_bytes()));
                }
            });
        }
    });
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.errors), (320, 0, 0));
}

#[test]
fn tls_to_a_plain_http_server_is_one_failure() {
    let Some(server) = Nginx::start() else { return };
    let cache = HttpCache::new(&format!("https://127.0.0.1:{}/cache", server.port())).unwrap();
    assert_eq!(cache.get_blob(&Digest::of(b"x")), None);
    assert_eq!(cache.stats().errors, 1);
    assert!(cache.unavailable().is_some());
}

#[test]
fn sequential_requests_share_one_connection() {
    let Some(server) = Nginx::start() else { return };
    let cache = client(&server);
    for i in 0..5 {
        let key = Digest::of(format!("task {i}").as_bytes());
        // A miss, an upload, a hit and an existence check.
        assert_eq!(cache.get_action(&key), None);
        assert_eq!(cache.get_blob(&key), None);
        let blob = cache.put_blob(format!("output {i}").as_bytes());
        cache.put_action(&key, &action(&blob));
        assert!(cache.get_action(&key).is_some());
        assert!(cache.has_blob(&blob));
    }
    // Waits (boundedly) for nginx to log the last request, which it does after answering it.
    let log = server.access_log_of_at_least(30, std::time::Duration::from_secs(10));
    let mut connections: Vec<&str> = log.lines().map(|line| line.split(' ').next().unwrap()).collect();
    connections.dedup();
    assert_eq!(log.lines().count(), 30, "{log}");
    assert_eq!(connections.len(), 1, "{log}");
}
