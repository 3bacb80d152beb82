//! Gzip for large answers, on every core, sent as it is made. Compressing is most of the time a
//! history answer takes (half a megabyte of JSON for an hour of five signals), and inflating it most
//! of the client's: tower-http's `CompressionLayer` deflates on one thread and sends when done. Here
//! a big body is cut into parts of ~128 KiB, each produced (for a history answer, serialized) and
//! deflated by whichever core is free, and the parts are sent in order as soon as each is ready, so
//! the client inflates the first while the server still deflates the last. They join into a single
//! ordinary gzip stream, as `pigz` does: every part but the last ends with a sync flush, which ends
//! it on a byte boundary without ending the stream. A response that already carries
//! `Content-Encoding` passes through the `CompressionLayer` untouched.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use futures::{Stream, StreamExt};
use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

/// Below this one thread deflating in one go is quicker than handing parts out (and the
/// `CompressionLayer` does it).
const PARALLEL_FROM: usize = 128 * 1024;

/// Threads to deflate on. Asked once: on Linux the answer reads the cgroup's CPU quota from files.
static CORES: LazyLock<usize> =
    LazyLock::new(|| std::thread::available_parallelism().map_or(1, |n| n.get()));

/// Size of a part: small enough that the client starts early, large enough that deflate's 32 KiB
/// window, lost at each part's start, and the hand-offs between threads cost little (64 KiB parts
/// were slower).
const PART_BYTES: usize = 128 * 1024;

/// Whether the request's `Accept-Encoding` allows gzip (and does not rule it out with `q=0`).
pub fn accepted(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

/// An answer's body, written in `n` parts that are written side by side and joined in order.
pub trait InParts: Send + Sync + 'static {
    /// The body's size in bytes, or a fair guess, before it is written.
    fn size_hint(&self) -> usize;
    /// Part `k` of `n` (`k < n`).
    fn part(&self, k: usize, n: usize) -> Cow<'_, [u8]>;

    /// The whole body, for an answer sent as it is.
    fn whole(self) -> Vec<u8>
    where
        Self: Sized,
    {
        self.part(0, 1).into_owned()
    }
}

/// A finished body, cut into equal slices.
impl InParts for Vec<u8> {
    fn size_hint(&self) -> usize {
        self.len()
    }

    fn part(&self, k: usize, n: usize) -> Cow<'_, [u8]> {
        let size = self.len().div_ceil(n);
        let start = (k * size).min(self.len());
        Cow::Borrowed(&self[start..(start + size).min(self.len())])
    }

    fn whole(self) -> Vec<u8> {
        self
    }
}

/// `body` as the response, gzipped on all cores when it is large and the client accepts gzip;
/// otherwise left to the `CompressionLayer`.
pub fn respond(headers: &HeaderMap, content_type: &'static str, body: impl InParts) -> Response {
    if body.size_hint() < PARALLEL_FROM || !accepted(headers) {
        return ([(header::CONTENT_TYPE, content_type)], body.whole()).into_response();
    }
    let parts = body.size_hint().div_ceil(PART_BYTES);
    let stream = compress(body, parts, *CORES).map(|piece| Ok::<_, Infallible>(Bytes::from(piece)));
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_ENCODING, "gzip"),
            (header::VARY, "accept-encoding"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// One gzip member holding `body`, in `parts` parts produced and deflated on `threads` threads of
/// tokio's blocking pool (kept between requests: starting threads for each answer cost measurably),
/// streamed in order, the first with the gzip header and the last with the trailer. Dropping the
/// stream (the client has gone) stops the threads after the part in hand.
pub fn compress(
    body: impl InParts,
    parts: usize,
    threads: usize,
) -> impl Stream<Item = Vec<u8>> + Send {
    let parts = parts.max(1);
    let body = Arc::new(body);
    let next = Arc::new(AtomicUsize::new(0));
    let (done, finished) = tokio::sync::mpsc::unbounded_channel::<(usize, Vec<u8>, Crc)>();
    for _ in 0..threads.clamp(1, parts) {
        let (body, next, done) = (body.clone(), next.clone(), done.clone());
        tokio::task::spawn_blocking(move || {
            let mut deflater = Compress::new(Compression::fast(), false);
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= parts {
                    return;
                }
                let data = body.part(k, parts);
                let mut crc = Crc::new();
                crc.update(&data);
                // Header: magic, deflate, no flags, no time, no extra flags, unknown OS.
                let header: &[u8] = if k == 0 {
                    &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]
                } else {
                    &[]
                };
                let deflated = deflate(&mut deflater, header, &data, k == parts - 1);
                if done.send((k, deflated, crc)).is_err() {
                    return;
                }
            }
        });
    }
    let joined = Joined {
        early: (0..parts).map(|_| None).collect(),
        sent: 0,
        crc: Crc::new(),
    };
    futures::stream::unfold(
        (finished, joined),
        |(mut finished, mut joined)| async move {
            loop {
                if let Some(piece) = joined.next_in_order() {
                    return Some((piece, (finished, joined)));
                }
                // `None` only if a thread panicked before its part was sent: the stream ends without
                // its trailer, so it cannot pass for whole.
                let (k, deflated, crc) = finished.recv().await?;
                joined.early[k] = Some((deflated, crc));
            }
        },
    )
}

/// Deflated parts waiting for those before them, and the checksum of those sent.
struct Joined {
    early: Vec<Option<(Vec<u8>, Crc)>>,
    sent: usize,
    crc: Crc,
}

impl Joined {
    /// The next part in order if it is ready; the last comes with the gzip trailer.
    fn next_in_order(&mut self) -> Option<Vec<u8>> {
        let (mut deflated, crc) = self.early.get_mut(self.sent)?.take()?;
        self.crc.combine(&crc);
        self.sent += 1;
        if self.sent == self.early.len() {
            deflated.extend_from_slice(&self.crc.sum().to_le_bytes());
            // ISIZE is the length modulo 2^32 by definition, as `amount` counts it.
            deflated.extend_from_slice(&self.crc.amount().to_le_bytes());
        }
        Some(deflated)
    }
}

/// `header`, then the raw deflate of one part on its own (no references to earlier parts): ended
/// with a sync flush, or finished if it is the last.
fn deflate(deflater: &mut Compress, header: &[u8], part: &[u8], last: bool) -> Vec<u8> {
    deflater.reset();
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(header.len() + part.len() / 2 + 64);
    out.extend_from_slice(header);
    loop {
        let consumed = deflater.total_in() as usize;
        let status = deflater
            .compress_vec(&part[consumed..], &mut out, flush)
            .expect("deflate never fails on well-formed input");
        let done = deflater.total_in() as usize == part.len() && out.len() < out.capacity();
        if status == Status::StreamEnd || (!last && done) {
            return out;
        }
        out.reserve(out.capacity().max(64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[tokio::test]
    async fn parts_join_into_one_ordinary_gzip_stream() {
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| format!("{},{};", i, i % 97).into_bytes())
            .collect();
        for (parts, threads) in [(1, 1), (2, 2), (3, 2), (8, 3), (40, 2)] {
            let gz = whole(data.clone(), parts, threads).await;
            assert!(gz.len() < data.len(), "{parts} parts compress");
            assert_eq!(gunzip(&gz), data, "{parts} parts");
        }
        assert_eq!(gunzip(&whole(Vec::new(), 2, 2).await), b"");
        assert_eq!(gunzip(&whole(b"x".to_vec(), 4, 2).await), b"x");
    }

    async fn whole(data: Vec<u8>, parts: usize, threads: usize) -> Vec<u8> {
        compress(data, parts, threads).concat().await
    }

    /// A body whose parts take a while, counting those written.
    struct Slow(Arc<AtomicUsize>);

    impl InParts for Slow {
        fn size_hint(&self) -> usize {
            0
        }

        fn part(&self, k: usize, _: usize) -> Cow<'_, [u8]> {
            self.0.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(std::time::Duration::from_millis(5));
            Cow::Owned(vec![k as u8; 1_000])
        }
    }

    #[tokio::test]
    async fn a_client_gone_stops_the_work() {
        let written = Arc::new(AtomicUsize::new(0));
        let mut stream = Box::pin(compress(Slow(written.clone()), 100, 2));
        stream.next().await.unwrap();
        stream.next().await.unwrap();
        drop(stream);
        // Long enough for all 100 parts (5 ms each, two threads) had the threads gone on.
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        let written = written.load(Ordering::Relaxed);
        assert!(
            written < 20,
            "{written} of 100 parts written for a client gone after 2"
        );
    }

    #[test]
    fn accept_encoding_is_read_like_http_says() {
        let accepts = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT_ENCODING, value.parse().unwrap());
            accepted(&headers)
        };
        assert!(accepts("gzip"));
        assert!(accepts("br;q=1.0, GZIP;q=0.5"));
        assert!(!accepts("br"));
        assert!(!accepts("gzip;q=0"));
        assert!(!accepted(&HeaderMap::new()));
    }
}
