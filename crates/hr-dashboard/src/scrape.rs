//! Scraping the pipeline's Prometheus `/metrics` over plain HTTP (the endpoint binds to loopback).

use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::Uri;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// A scrape larger than this is refused rather than read.
const MAX_BYTES: usize = 4 << 20;

/// A checked `http://host:port/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsUrl {
    uri: Uri,
    host: String,
    port: u16,
}

impl MetricsUrl {
    /// Reads `url`.
    ///
    /// # Errors
    /// A message when it is not an `http://` URL with a host (`https` is not supported: the
    /// pipeline serves its metrics in plain HTTP on loopback).
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("`{url}`: only http:// metrics URLs are supported"));
        }
        let host = uri
            .host()
            .ok_or_else(|| format!("`{url}` has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(80);
        Ok(Self { uri, host, port })
    }
}

impl std::fmt::Display for MetricsUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.uri.fmt(f)
    }
}

/// GETs the URL and returns its body as text.
///
/// # Errors
/// A short message when the connection, the request or the status fails, or it takes longer
/// than `timeout`.
pub async fn fetch(url: &MetricsUrl, timeout: Duration) -> Result<String, String> {
    tokio::time::timeout(timeout, fetch_inner(url))
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} ms", timeout.as_millis())))
}

async fn fetch_inner(url: &MetricsUrl) -> Result<String, String> {
    let stream = tokio::net::TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| format!("connecting to {}:{}: {e}", url.host, url.port))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let path = url
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let authority = url
        .uri
        .authority()
        .map_or_else(|| url.host.clone(), |a| a.to_string());
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::ACCEPT, "text/plain")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let result = async {
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status()));
        }
        let body = Limited::new(resp.into_body(), MAX_BYTES)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
    .await;
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        let u = MetricsUrl::parse("http://127.0.0.1:9464/metrics").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 9464));
        assert_eq!(MetricsUrl::parse("http://[::1]/m").unwrap().host, "::1");
        assert_eq!(MetricsUrl::parse("http://[::1]/m").unwrap().port, 80);
        assert!(
            MetricsUrl::parse("https://x/metrics")
                .unwrap_err()
                .contains("only http://")
        );
        assert!(MetricsUrl::parse("not a url").is_err());
    }

    #[tokio::test]
    async fn a_closed_port_is_an_error_not_a_hang() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let u = MetricsUrl::parse(&format!("http://127.0.0.1:{port}/metrics")).unwrap();
        let e = fetch(&u, Duration::from_secs(2)).await.unwrap_err();
        assert!(e.contains("connecting to 127.0.0.1"), "{e}");
    }

    #[tokio::test]
    async fn reads_a_body_and_refuses_an_error_status() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            for reply in [
                "HTTP/1.1 200 OK\r\ncontent-length: 20\r\n\r\nhr_records_total 5\n\n",
                "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n",
            ] {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await.unwrap();
                s.write_all(reply.as_bytes()).await.unwrap();
            }
        });
        let u = MetricsUrl::parse(&format!("http://127.0.0.1:{port}/metrics")).unwrap();
        let body = fetch(&u, Duration::from_secs(5)).await.unwrap();
        assert_eq!(body, "hr_records_total 5\n\n");
        let e = fetch(&u, Duration::from_secs(5)).await.unwrap_err();
        assert!(e.contains("500"), "{e}");
    }
}
