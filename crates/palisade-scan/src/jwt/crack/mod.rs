//! Guessing a token's HMAC secret on every core: from a built-in list of secrets seen in
//! documentation and starter projects, from a word list streamed from disk, and from masks.

mod hmac;
mod mask;

use std::io::BufRead;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

pub use hmac::{HmacAlg, Target};
pub use mask::Mask;

use crate::ScanError;

/// Where guesses come from, tried in the order given.
pub enum Candidates {
    BuiltIn,
    Wordlist(Box<dyn BufRead + Send>),
    Mask(Mask),
}

/// What a cracking run did.
#[derive(Debug)]
pub struct Outcome {
    pub secret: Option<Vec<u8>>,
    pub tried: u64,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn per_second(&self) -> f64 {
        self.tried as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Lines a worker takes from a word list at a time; the lock is held only to read them.
const WORD_BATCH: usize = 16_384;
/// Mask candidates a worker takes at a time.
const MASK_BATCH: u64 = 65_536;

/// Tries every candidate against `target` on `threads` threads until one matches. With
/// `progress`, prints the count and rate to stderr every two seconds.
pub fn crack(
    target: &Target,
    sources: Vec<Candidates>,
    threads: usize,
    progress: bool,
) -> Result<Outcome, ScanError> {
    let started = Instant::now();
    let tried = AtomicU64::new(0);
    let found: Mutex<Option<Vec<u8>>> = Mutex::new(None);
    let stop = AtomicBool::new(false);
    let (done, finished) = mpsc::channel::<()>();
    let run = Run {
        target,
        tried: &tried,
        found: &found,
        stop: &stop,
    };
    std::thread::scope(|s| -> Result<(), ScanError> {
        if progress {
            let tried = &tried;
            s.spawn(move || report_progress(tried, started, finished));
        }
        for source in sources {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            match source {
                Candidates::BuiltIn => run.words(threads, Mutex::new(BUILT_IN.as_bytes()))?,
                Candidates::Wordlist(reader) => run.words(threads, Mutex::new(reader))?,
                Candidates::Mask(mask) => run.mask(threads, &mask),
            }
        }
        drop(done);
        Ok(())
    })?;
    Ok(Outcome {
        secret: found.into_inner().unwrap_or_else(|e| e.into_inner()),
        tried: tried.into_inner(),
        elapsed: started.elapsed(),
    })
}

struct Run<'a> {
    target: &'a Target,
    tried: &'a AtomicU64,
    found: &'a Mutex<Option<Vec<u8>>>,
    stop: &'a AtomicBool,
}

impl Run<'_> {
    fn check(&self, candidate: &[u8]) -> bool {
        if self.target.matches(candidate) {
            *self.found.lock().unwrap_or_else(|e| e.into_inner()) = Some(candidate.to_vec());
            self.stop.store(true, Ordering::Relaxed);
            return true;
        }
        false
    }

    fn words<R: BufRead + Send>(&self, threads: usize, reader: Mutex<R>) -> Result<(), ScanError> {
        let reader = &reader;
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(move || -> std::io::Result<()> {
                        let mut batch = Vec::with_capacity(WORD_BATCH * 16);
                        let mut ends = Vec::with_capacity(WORD_BATCH);
                        while !self.stop.load(Ordering::Relaxed) {
                            batch.clear();
                            ends.clear();
                            {
                                let mut r = reader.lock().unwrap_or_else(|e| e.into_inner());
                                while ends.len() < WORD_BATCH
                                    && r.read_until(b'\n', &mut batch)? > 0
                                {
                                    while matches!(batch.last(), Some(b'\n' | b'\r')) {
                                        batch.pop();
                                    }
                                    ends.push(batch.len());
                                }
                            }
                            if ends.is_empty() {
                                return Ok(());
                            }
                            let mut start = 0;
                            let mut checked = 0;
                            for &end in &ends {
                                checked += 1;
                                if self.check(&batch[start..end]) {
                                    break;
                                }
                                start = end;
                            }
                            self.tried.fetch_add(checked, Ordering::Relaxed);
                        }
                        Ok(())
                    })
                })
                .collect();
            for w in workers {
                w.join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
                    .map_err(|e| ScanError::Io(format!("reading the word list: {e}")))?;
            }
            Ok(())
        })
    }

    fn mask(&self, threads: usize, mask: &Mask) {
        let total = mask.count().unwrap_or(0);
        let next = AtomicU64::new(0);
        let next = &next;
        let len = mask.width();
        std::thread::scope(|inner| {
            for _ in 0..threads {
                inner.spawn(move || {
                    let mut batch = Vec::new();
                    while !self.stop.load(Ordering::Relaxed) {
                        let start = next.fetch_add(MASK_BATCH, Ordering::Relaxed);
                        if start >= total {
                            return;
                        }
                        let end = (start + MASK_BATCH).min(total);
                        mask.fill(start, end, &mut batch);
                        let mut checked = 0;
                        for word in batch.chunks(len) {
                            checked += 1;
                            if self.check(word) {
                                break;
                            }
                        }
                        self.tried.fetch_add(checked, Ordering::Relaxed);
                    }
                });
            }
        });
    }
}

fn report_progress(tried: &AtomicU64, started: Instant, finished: mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(Duration::from_secs(2)) {
        let n = tried.load(Ordering::Relaxed);
        let rate = n as f64 / started.elapsed().as_secs_f64();
        eprintln!(
            "palisade scan: {:.1} M secrets tried, {:.2} M/s",
            n as f64 / 1e6,
            rate / 1e6
        );
    }
}

/// Secrets that show up in tutorials, framework defaults, sample `.env` files and starter
/// projects, one per line.
const BUILT_IN: &str = include_str!("common-secrets.txt");

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::hmac as reference;

    fn target(secret: &[u8]) -> Target {
        let input = b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0";
        let tag = reference::sign(&reference::Key::new(reference::HMAC_SHA256, secret), input);
        Target::new(HmacAlg::Hs256, input, tag.as_ref()).unwrap()
    }

    #[test]
    fn finds_a_secret_in_each_kind_of_source_and_counts_what_it_tried() {
        let built_in = crack(
            &target(b"your-256-bit-secret"),
            vec![Candidates::BuiltIn],
            2,
            false,
        )
        .unwrap();
        assert_eq!(
            built_in.secret.as_deref(),
            Some(&b"your-256-bit-secret"[..])
        );

        let list: Vec<u8> = (0..100_000)
            .flat_map(|i| format!("word{i}\r\n").into_bytes())
            .collect();
        let words = crack(
            &target(b"word99999"),
            vec![Candidates::Wordlist(Box::new(std::io::Cursor::new(list)))],
            2,
            false,
        )
        .unwrap();
        assert_eq!(words.secret.as_deref(), Some(&b"word99999"[..]));
        assert_eq!(words.tried, 100_000, "every line was read once");

        let mask = crack(
            &target(b"k7Z"),
            vec![Candidates::Mask(Mask::parse("?l?d?u").unwrap())],
            2,
            false,
        )
        .unwrap();
        assert_eq!(mask.secret.as_deref(), Some(&b"k7Z"[..]));
    }

    #[test]
    fn reports_no_secret_when_none_matches() {
        let out = crack(
            &target(b"a long random secret that is in no list"),
            vec![
                Candidates::BuiltIn,
                Candidates::Mask(Mask::parse("?d?d?d").unwrap()),
            ],
            2,
            false,
        )
        .unwrap();
        assert_eq!(out.secret, None);
        assert_eq!(out.tried, BUILT_IN.lines().count() as u64 + 1000);
    }
}
