//! Gzip for large answers, on every core. Compressing is most of the time a history answer takes (half
//! a megabyte of JSON for an hour of five signals): tower-http's `CompressionLayer` deflates on one
//! thread, so big bodies are cut into one part per core here, each produced (for a history answer,
//! serialized) and deflated on its own thread, and joined into a single ordinary gzip stream, as `pigz`
//! does. Every part but the last ends with a sync flush, which ends it on a byte boundary without
//! ending the stream. A response that already carries `Content-Encoding` passes through the
//! `CompressionLayer` untouched.

use crate::server::error::ApiError;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use std::borrow::Cow;

/// Below this a single thread is quicker than starting others (and the `CompressionLayer` does it).
const PARALLEL_FROM: usize = 128 * 1024;

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
pub async fn respond(
    headers: &HeaderMap,
    content_type: &'static str,
    body: impl InParts,
) -> Result<Response, ApiError> {
    if body.size_hint() < PARALLEL_FROM || !accepted(headers) {
        return Ok(([(header::CONTENT_TYPE, content_type)], body.whole()).into_response());
    }
    let compressed = tokio::task::spawn_blocking(move || {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        compress(&body, threads)
    })
    .await;
    let gz = match compressed {
        Ok(gz) => gz,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Only a runtime that is shutting down cancels blocking tasks.
        Err(_) => return Err(ApiError::ShuttingDown),
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_ENCODING, "gzip"),
            (header::VARY, "accept-encoding"),
        ],
        gz,
    )
        .into_response())
}

/// One gzip member holding `body`, written and deflated in `parts` parts at once.
pub fn compress(body: &impl InParts, parts: usize) -> Vec<u8> {
    let parts = parts.max(1);
    let last = parts - 1;
    let write = |k: usize| {
        let data = body.part(k, parts);
        let mut crc = Crc::new();
        crc.update(&data);
        (deflate(&data, k == last), crc)
    };
    let deflated: Vec<(Vec<u8>, Crc)> = std::thread::scope(|scope| {
        let others: Vec<_> = (1..parts).map(|k| scope.spawn(move || write(k))).collect();
        let first = write(0);
        std::iter::once(first)
            .chain(others.into_iter().map(|t| t.join().expect("deflate")))
            .collect()
    });
    let mut crc = Crc::new();
    // Header: magic, deflate, no flags, no time, no extra flags, unknown OS.
    let mut gz = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    for (part, part_crc) in &deflated {
        gz.extend_from_slice(part);
        crc.combine(part_crc);
    }
    gz.extend_from_slice(&crc.sum().to_le_bytes());
    // ISIZE is the length modulo 2^32 by definition, as `amount` counts it.
    gz.extend_from_slice(&crc.amount().to_le_bytes());
    gz
}

/// Raw deflate of one slice: ended with a sync flush, or finished if it is the last.
fn deflate(part: &[u8], last: bool) -> Vec<u8> {
    let mut deflater = Compress::new(Compression::fast(), false);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(part.len() / 2 + 64);
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

    #[test]
    fn slices_join_into_one_ordinary_gzip_stream() {
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| format!("{},{};", i, i % 97).into_bytes())
            .collect();
        for slices in [1, 2, 3, 8] {
            let gz = compress(&data, slices);
            assert!(gz.len() < data.len(), "{slices} slices compress");
            assert_eq!(gunzip(&gz), data, "{slices} slices");
        }
        assert_eq!(gunzip(&compress(&Vec::new(), 2)), b"");
        assert_eq!(gunzip(&compress(&b"x".to_vec(), 4)), b"x");
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
