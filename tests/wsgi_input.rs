//! wsgi.input (contract "wsgi.input"): every read method over fixed-length and chunked
//! bodies, 411 for chunked bodies unless WSGIChunkedRequest On, 413 over
//! LimitRequestBody, a client that disconnects mid-body (the app sees OSError, the
//! child survives), and `Expect: 100-continue`. On event, worker and prefork; every
//! check also runs through wsgiref.validate.validator, except `read()` without a size,
//! which the validator itself rejects (PEP 3333 makes the size argument optional for
//! servers only).
mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const LINES: &[u8] = b"line1\nline22\nlast";

fn sha256_hex(data: &[u8]) -> String {
    // tiny SHA-256 (no crates in this project's dev-dependencies)
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
        0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
        0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
        0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
        0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
        0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
        0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] =
        [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
    let mut msg = data.to_vec();
    let bits = (data.len() as u64) * 8;
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 64];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([block[4 * i], block[4 * i + 1], block[4 * i + 2], block[4 * i + 3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
        }
        let mut v = h;
        for i in 0..64 {
            let s1 = v[4].rotate_right(6) ^ v[4].rotate_right(11) ^ v[4].rotate_right(25);
            let ch = (v[4] & v[5]) ^ (!v[4] & v[6]);
            let t1 = v[7].wrapping_add(s1).wrapping_add(ch).wrapping_add(K[i]).wrapping_add(w[i]);
            let s0 = v[0].rotate_right(2) ^ v[0].rotate_right(13) ^ v[0].rotate_right(22);
            let maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
            let t2 = s0.wrapping_add(maj);
            v = [t1.wrapping_add(t2), v[0], v[1], v[2], v[3].wrapping_add(t1), v[4], v[5], v[6]];
        }
        for i in 0..8 {
            h[i] = h[i].wrapping_add(v[i]);
        }
    }
    h.iter().map(|x| format!("{x:08x}")).collect()
}

fn binary(n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 7 + i / 251) % 256) as u8).collect()
}

/// Many lines of varying length (some empty), crossing any buffer size.
fn many_lines() -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..4000usize {
        for j in 0..(i * 37 % 300) {
            v.push(b'a' + (j % 26) as u8);
        }
        v.push(b'\n');
    }
    v.extend_from_slice(b"tail-without-newline");
    v
}

fn line_sizes(data: &[u8]) -> Vec<i64> {
    let mut out = Vec::new();
    let mut cur = 0i64;
    for &b in data {
        cur += 1;
        if b == b'\n' {
            out.push(cur);
            cur = 0;
        }
    }
    if cur > 0 {
        out.push(cur);
    }
    out
}

fn sizes(j: &Json) -> Vec<i64> {
    j.get("sizes").as_arr().iter().map(|x| x.as_i64()).collect()
}

/// POSTs `body` to `path` (fixed length) or, with `chunked`, as a chunked body over a
/// raw socket; returns the app's JSON report.
fn post(cl: &Client, path: &str, body: &[u8], chunked: bool) -> Json {
    if chunked {
        let r = cl
            .raw(
                &format!("POST {path} HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Type: application/octet-stream\r\nConnection: close"),
                &chunk_encode(body, 1000),
                Duration::from_secs(20),
            )
            .response()
            .unwrap_or_else(|e| panic!("POST {path} (chunked) via {}: {e}", cl.via.name()));
        assert_eq!(r.status, 200, "POST {path} (chunked) via {}: {}", cl.via.name(), short(&r.text()));
        r.json()
    } else {
        let r = cl.request("POST", path, &[("Content-Type", "application/octet-stream")], body);
        assert_eq!(r.status, 200, "POST {path} via {}: {}", cl.via.name(), short(&r.text()));
        r.json()
    }
}

fn check_whole(j: &Json, body: &[u8]) {
    assert_eq!(j.get("len").as_i64(), body.len() as i64, "length read: {j}");
    assert_eq!(j.get("sha256").as_str(), sha256_hex(body), "content read differs");
    let types = j.get("types").str_list();
    assert!(types.is_empty() || types == ["bytes"], "pieces must be bytes: {types:?}");
}

/// The read-method checks, over fixed-length bodies (`prefix` = /input) or chunked ones
/// (`prefix` = /inchunk, with `chunked`).
fn read_methods(c: &mut Checks, name: &str, apache: &Apache, prefix: &str, chunked: bool) {
    for via in Via::BOTH {
        let cl = Client::new(apache, via);
        let v = via.name();
        let p = |q: &str| format!("{prefix}?{q}");
        if via == Via::Plain {
            c.run(&format!("{name}: read() [{v}]"), || {
                let body = binary(200_000);
                let j = post(&cl, &p("mode=read"), &body, chunked);
                check_whole(&j, &body);
                assert_eq!(sizes(&j), [200_000]);
            });
        }
        c.run(&format!("{name}: read(-1) and read(None) [{v}]"), || {
            let body = binary(150_001);
            for m in ["read_neg", "read_none"] {
                let j = post(&cl, &p(&format!("mode={m}")), &body, chunked);
                check_whole(&j, &body);
                assert_eq!(sizes(&j), [150_001], "{m}");
            }
        });
        c.run(&format!("{name}: read(n) until b'' [{v}]"), || {
            let body: Vec<u8> = (0..100u8).collect();
            let j = post(&cl, &p("mode=readn&n=7"), &body, chunked);
            check_whole(&j, &body);
            let mut want = vec![7i64; 14];
            want.push(2);
            assert_eq!(sizes(&j), want);
            let big = binary(300_000);
            let j = post(&cl, &p("mode=readn&n=65536"), &big, chunked);
            check_whole(&j, &big);
            assert_eq!(sizes(&j), [65536, 65536, 65536, 65536, 37856]);
        });
        c.run(&format!("{name}: readline() [{v}]"), || {
            let j = post(&cl, &p("mode=readline"), LINES, chunked);
            check_whole(&j, LINES);
            assert_eq!(sizes(&j), [6, 7, 4]);
            let many = many_lines();
            let j = post(&cl, &p("mode=readline"), &many, chunked);
            check_whole(&j, &many);
            assert_eq!(sizes(&j), line_sizes(&many), "readline over many lines");
        });
        c.run(&format!("{name}: readline(n) [{v}]"), || {
            let j = post(&cl, &p("mode=readline_n&n=4"), LINES, chunked);
            check_whole(&j, LINES);
            assert_eq!(sizes(&j), [4, 2, 4, 3, 4]);
        });
        c.run(&format!("{name}: readlines() [{v}]"), || {
            let j = post(&cl, &p("mode=readlines"), LINES, chunked);
            check_whole(&j, LINES);
            assert_eq!(sizes(&j), [6, 7, 4]);
        });
        c.run(&format!("{name}: readlines(hint) [{v}]"), || {
            let j = post(&cl, &p("mode=readlines_hint&hint=8"), LINES, chunked);
            check_whole(&j, LINES);
            let s = sizes(&j);
            assert!(s == [6, 7] || s == [6, 7, 4], "readlines(8) over 6/7/4-byte lines gave {s:?}");
            assert_eq!(j.get("rest").as_i64(), 17 - s.iter().sum::<i64>(), "rest after readlines(hint)");
        });
        c.run(&format!("{name}: iteration [{v}]"), || {
            let j = post(&cl, &p("mode=iter"), LINES, chunked);
            check_whole(&j, LINES);
            assert_eq!(sizes(&j), [6, 7, 4]);
            let many = many_lines();
            let j = post(&cl, &p("mode=iter"), &many, chunked);
            check_whole(&j, &many);
            assert_eq!(sizes(&j), line_sizes(&many));
        });
        c.run(&format!("{name}: empty body [{v}]"), || {
            let j = post(&cl, &p("mode=read_neg"), b"", chunked);
            check_whole(&j, b"");
            let j = post(&cl, &p("mode=readline"), b"", chunked);
            assert_eq!(sizes(&j), Vec::<i64>::new());
        });
        c.run(&format!("{name}: CONTENT_LENGTH [{v}]"), || {
            let j = post(&cl, &p("mode=read_neg"), b"12345", chunked);
            if chunked {
                assert_eq!(j.get("content_length"), &Json::Null, "no CONTENT_LENGTH for a chunked body");
            } else {
                assert_eq!(j.get("content_length").as_str(), "5");
            }
        });
    }
}

fn group(c: &mut Checks, name: &str, dir: TestDir, conf: Conf, body: impl FnOnce(&mut Checks, &Apache)) {
    match rp_start(dir, &conf) {
        Err(e) => c.run(&format!("{name}: server start"), || panic!("{e}")),
        Ok(apache) => {
            body(c, &apache);
            c.run(&format!("{name}: validator raised nothing"), || {
                let v = validator_complaints(&apache.error_log());
                assert!(v.is_empty(), "validator complaints:\n{}", v.join("\n"));
            });
            c.run(&format!("{name}: no crash"), || assert_no_crash(&apache.error_log()));
        }
    }
}

fn install(dir: &TestDir) -> (String, String) {
    let state = dir.mkdir_www("state").to_string_lossy().into_owned();
    rp_install(dir, "rp_input.wsgi", &[("STATE_DIR", &state)])
}

fn fixed(c: &mut Checks, mpm: Mpm) {
    let dir = TestDir::new(&format!("input-{}", mpm.name()));
    let (app, wrapped) = install(&dir);
    let table = |a: &str| format!("WSGIScriptAlias /input {a}\nWSGIScriptAlias /inlimit {a}\n");
    let conf = Conf::new(mpm).extra(&format!(
        "{}<Location /inlimit>\n  LimitRequestBody 10\n</Location>\n{}",
        table(&app),
        rp_vhosts(&table(&wrapped))
    ));
    let name = format!("input {}", mpm.name());
    group(c, &name, dir, conf, |c, apache| {
        read_methods(c, &name, apache, "/input", false);
        for via in Via::BOTH {
            let cl = Client::new(apache, via);
            let v = via.name();
            c.run(&format!("{name}: chunked body with WSGIChunkedRequest at its default (Off) -> 411 [{v}]"), || {
                let r = cl.raw(
                    "POST /input?mode=read_neg HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close",
                    &chunk_encode(b"hello world", 4),
                    Duration::from_secs(10),
                );
                assert_eq!(r.status(), Some(411), "{}", short(&r.text()));
            });
            c.run(&format!("{name}: body over LimitRequestBody -> 413 [{v}]"), || {
                let r = cl.request("POST", "/inlimit?mode=read_neg", &[], &[b'x'; 100]);
                assert_eq!(r.status, 413, "{}", short(&r.text()));
                let j = post(&cl, "/inlimit?mode=read_neg", b"0123456789", false);
                check_whole(&j, b"0123456789");
            });
            c.run(&format!("{name}: Expect: 100-continue gets 100 Continue when the app reads [{v}]"), || {
                let mut s = TcpStream::connect(("127.0.0.1", apache.port)).unwrap();
                let head = format!(
                    "POST /input?mode=read_neg HTTP/1.1\r\nHost: {}\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
                    cl.host()
                );
                s.write_all(head.as_bytes()).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                let deadline = Instant::now() + Duration::from_secs(10);
                while !String::from_utf8_lossy(&got).contains("\r\n\r\n") && Instant::now() < deadline {
                    let n = s.read(&mut buf).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                let first = String::from_utf8_lossy(&got).into_owned();
                assert!(first.starts_with("HTTP/1.1 100 Continue\r\n"), "expected 100 Continue first, got {first:?}");
                s.write_all(b"hello").unwrap();
                let rest = read_until_close(&mut s, Duration::from_secs(10));
                let mut all = got.clone();
                all.extend_from_slice(&rest.bytes);
                let rr = RawReply { bytes: all, closed: rest.closed, reset: rest.reset };
                let r = rr.response().unwrap();
                assert_eq!(r.status, 200, "{}", short(&r.text()));
                check_whole(&r.json(), b"hello");
            });
            c.run(&format!("{name}: client disconnect mid-body -> OSError in the app, server fine [{v}]"), || {
                let token = format!("{}-{}-{}", mpm.name(), v, std::process::id());
                {
                    let mut s = TcpStream::connect(("127.0.0.1", apache.port)).unwrap();
                    let head = format!(
                        "POST /input?mode=disconnect&token={token} HTTP/1.1\r\nHost: {}\r\nContent-Length: 1000000\r\nConnection: close\r\n\r\n",
                        cl.host()
                    );
                    s.write_all(head.as_bytes()).unwrap();
                    s.write_all(&binary(10_000)).unwrap();
                    std::thread::sleep(Duration::from_millis(300));
                    // dropped: the connection closes with 990000 body bytes missing
                }
                let deadline = Instant::now() + Duration::from_secs(15);
                let rec = loop {
                    let r = cl.get(&format!("/input?mode=state&token={token}"));
                    assert_eq!(r.status, 200, "{}", short(&r.text()));
                    let t = r.text();
                    if t != "none" || Instant::now() > deadline {
                        break t;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                };
                assert!(rec.starts_with("OSError"), "the app should have caught an OSError, recorded {rec:?}");
                let j = post(&cl, "/input?mode=read_neg", b"after", false);
                check_whole(&j, b"after");
                assert_no_crash(&apache.error_log());
            });
        }
    });
}

fn chunked(c: &mut Checks, mpm: Mpm) {
    let dir = TestDir::new(&format!("input-chunked-{}", mpm.name()));
    let (app, wrapped) = install(&dir);
    let table = |a: &str| format!("WSGIScriptAlias /inchunk {a}\nWSGIScriptAlias /inchunklimit {a}\n");
    let conf = Conf::new(mpm).extra(&format!(
        "{}<Location /inchunk>\n  WSGIChunkedRequest On\n</Location>\n\
         <Location /inchunklimit>\n  WSGIChunkedRequest On\n  LimitRequestBody 10\n</Location>\n{}",
        table(&app),
        rp_vhosts(&table(&wrapped))
    ));
    let name = format!("chunked input {}", mpm.name());
    group(c, &name, dir, conf, |c, apache| {
        read_methods(c, &name, apache, "/inchunk", true);
        for via in Via::BOTH {
            let cl = Client::new(apache, via);
            let v = via.name();
            c.run(&format!("{name}: chunked body over LimitRequestBody -> 413 [{v}]"), || {
                let r = cl.raw(
                    "POST /inchunklimit?mode=read_neg HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close",
                    &chunk_encode(&[b'y'; 100], 10),
                    Duration::from_secs(10),
                );
                assert_eq!(r.status(), Some(413), "{}", short(&r.text()));
            });
        }
    });
}

fn suite(mpm: Mpm) {
    let mut c = Checks::new(format!("input {}", mpm.name()));
    fixed(&mut c, mpm);
    chunked(&mut c, mpm);
    rp_finish(c);
}

#[test]
fn input_event() {
    suite(Mpm::Event);
}

#[test]
fn input_worker() {
    suite(Mpm::Worker);
}

#[test]
fn input_prefork() {
    suite(Mpm::Prefork);
}
